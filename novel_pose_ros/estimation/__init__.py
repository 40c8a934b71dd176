"""Estimation: frame + detections -> crops -> PicoPose stages -> poses (ROS-free)."""

from novel_pose_ros.estimation.config import EstimatorConfig
from novel_pose_ros.estimation.estimator import DetectionFailure, EstimationReport, Estimator

__all__ = ["DetectionFailure", "EstimationReport", "Estimator", "EstimatorConfig"]
