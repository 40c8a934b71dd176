"""Estimation: frame + detections -> crops -> PicoPose stages -> poses (ROS-free).

`Estimator`, `EstimationReport` and `DetectionFailure` load PyTorch; they are imported on first use so
that `EstimatorConfig` (and the command line) stay cheap to import.
"""
from __future__ import annotations

from typing import Any

from novel_pose_ros.estimation.config import EstimatorConfig

__all__ = ["DetectionFailure", "EstimationReport", "Estimator", "EstimatorConfig"]


def __getattr__(name: str) -> Any:
    if name in ("DetectionFailure", "EstimationReport", "Estimator"):
        from novel_pose_ros.estimation import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'novel_pose_ros.estimation' has no attribute '{name}'")
