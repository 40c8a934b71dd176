"""Estimator configuration: one nested dataclass, loaded from YAML or a dict in one place, validated."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from novel_pose_ros.networks.picopose.config import CONFIGS
from novel_pose_ros.runtime import BACKENDS


@dataclass(frozen=True)
class EstimatorConfig:
    """How the Estimator runs.

    network: PicoPose configuration name; weights: checkpoint file (None = untrained, for plumbing checks);
    backend: auto | torch | onnxruntime; device: cpu | cuda.
    hypotheses: templates kept after stage 1 (PicoPose: 5); certainty_threshold: stage-3 cells kept;
    pnp_reprojection_px / pnp_iterations: RANSAC settings (PicoPose: 2 px, 150);
    min_mask_pixels: smaller detection masks are rejected; mask_query_background: zero the query crop
    outside the detection mask; template_level: icosphere level of the templates (0 = 42 views);
    max_batch: largest network batch (bounds memory); templates_dir: template cache (None = user cache).
    """

    network: str = "small_cnn"
    weights: Path | None = None
    backend: str = "auto"
    device: str = "cpu"
    hypotheses: int = 5
    certainty_threshold: float = 0.5
    pnp_reprojection_px: float = 2.0
    pnp_iterations: int = 150
    min_mask_pixels: int = 64
    mask_query_background: bool = False
    template_level: int = 0
    max_batch: int = 32
    templates_dir: Path | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.network not in CONFIGS:
            problems.append(f"network must be one of {sorted(CONFIGS)}, got '{self.network}'")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {BACKENDS}, got '{self.backend}'")
        if self.device not in ("cpu", "cuda"):
            problems.append(f"device must be 'cpu' or 'cuda', got '{self.device}'")
        if not 1 <= self.hypotheses <= 64:
            problems.append(f"hypotheses must be in [1, 64], got {self.hypotheses}")
        if not 0.0 <= self.certainty_threshold < 1.0:
            problems.append(f"certainty_threshold must be in [0, 1), got {self.certainty_threshold}")
        if not self.pnp_reprojection_px > 0:
            problems.append(f"pnp_reprojection_px must be positive, got {self.pnp_reprojection_px}")
        if self.pnp_iterations < 1 or self.min_mask_pixels < 1 or self.max_batch < 1:
            problems.append("pnp_iterations, min_mask_pixels and max_batch must be ≥ 1")
        if self.template_level not in (0, 1, 2):
            problems.append(f"template_level must be 0, 1 or 2, got {self.template_level}")
        if problems:
            raise ValueError("EstimatorConfig: " + "; ".join(problems))
        for name in ("weights", "templates_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value).expanduser())

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EstimatorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"EstimatorConfig: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "EstimatorConfig":
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"estimator config {path}: {exc}") from exc
        if not isinstance(values, dict):
            raise ValueError(f"estimator config {path}: expected a mapping")
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
