"""Benchmarks (library code, no argparse): what `novel-pose bench` measures and reports.

They are measurements, not tests: they print and write numbers and never pass or fail on them.
`run_estimator_benchmark` loads PyTorch and the inference back end; it is imported on first use so
that the command line stays cheap to start.
"""
from __future__ import annotations

from typing import Any

__all__ = ["BenchSettings", "EstimatorBenchmark", "LoadResult", "run_estimator_benchmark"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from novel_pose_ros.benchmarks import estimator_bench

        return getattr(estimator_bench, name)
    raise AttributeError(f"module 'novel_pose_ros.benchmarks' has no attribute '{name}'")
