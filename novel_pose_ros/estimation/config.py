"""Estimator configuration: one nested dataclass, loaded from YAML or a dict in one place, validated."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from novel_pose_ros.networks.picopose.config import CONFIGS
from novel_pose_ros.runtime import BACKENDS
from novel_pose_ros.runtime.engine_cache import PRECISIONS

# coarse stage [+ refiner [+ selector]]
# how PnP hypotheses are ranked: PicoPose's inlier ratio, the inlier count, or the IoU of the object's
# silhouette rendered at the pose with the detection mask (estimation/verification.py)
HYPOTHESIS_RULES = ("inlier_ratio", "inliers", "silhouette")
# "official": the official PicoPose code's stage 1, template features, template centre, scale and
# correspondence rules (estimation/official_picopose.py); "ours": our departures (docs/OFFICIAL_PICOPOSE.md);
# "auto": official for an official checkpoint (one without our metadata), else ours.
PICOPOSE_MODES = ("auto", "ours", "official")
USE_DEPTH = ("auto", "on", "off")  # read Frame.depth_m: when given, always, never
PIPELINES = ("picopose", "picopose+refine", "coop", "coop+refine", "coop+refine+select")


@dataclass(frozen=True)
class Pipeline:
    """Which stages run: coarse ("picopose" | "coop"), then the Co-op refiner, then the Co-op selector
    (which picks among the refined coarse hypotheses, so it needs the refiner)."""

    coarse: str
    refine: bool
    select: bool

    @classmethod
    def parse(cls, name: str) -> "Pipeline":
        if name not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got '{name}'")
        parts = name.split("+")
        return cls(parts[0], "refine" in parts, "select" in parts)


@dataclass(frozen=True)
class EstimatorConfig:
    """How the Estimator runs.

    network: PicoPose configuration name; weights: checkpoint file (None = untrained, for plumbing checks);
    backend: auto | torch | onnxruntime | tensorrt (auto: TensorRT when a GPU and TensorRT are present, else
    ONNX Runtime); device: cpu | cuda; precision: fp16 | fp32, of TensorRT engines (other back ends run fp32);
    torch_autocast: off | fp16 | bf16, mixed precision of the torch back end (PicoPose networks; off = fp32).
    hypotheses: templates that go on to stage 3 and PnP (5; each costs one flow decode, the largest stage on a CPU,
    docs/PERFORMANCE.md);
    templates_considered: templates kept after stage 1; on RGB frames with a detection mask, stage 2's affine of each
    carries its template mask into the query crop and the `hypotheses` of best overlap go on (PicoPose: the stage-1
    best `hypotheses`, which templates_considered ≤ hypotheses gives; with depth, stage 1's best go on, too);
    certainty_threshold: stage-3 cells kept;
    pnp_reprojection_px / pnp_iterations: RANSAC settings (PicoPose: 2 px, 150);
    min_mask_pixels: smaller detection masks are rejected; mask_query_background: zero the query crop
    outside the detection mask; template_level: icosphere level of the templates (0 = 42 views);
    max_batch: largest network batch (bounds memory); templates_dir: template cache (None = user cache).
    pipeline: which stages run (PIPELINES): the PicoPose or the Co-op coarse stage, then optionally the Co-op
    refiner (the coarse pose), or the refiner on every coarse hypothesis and the Co-op selector's best of them;
    for "coop", `hypotheses` is the number of best-scored templates given to PnP;
    coarse_weights / refiner_weights / selector_weights: Co-op checkpoints (None = the shipped ones);
    refine_iterations: render-and-compare rounds.
    picopose_mode: auto | ours | official (PICOPOSE_MODES): whose rules the PicoPose stages follow;
    official_rules: single official rules applied on top of `ours` (official_picopose.OFFICIAL_RULES; to
    measure each departure);
    hypothesis_rule: how PnP hypotheses are ranked (HYPOTHESIS_RULES; ties broken by the other key);
    min_inliers: a PnP hypothesis with fewer inliers does not compete (PicoPose: any success);
    inplane_hypotheses: each template hypothesis also runs stage 3 + PnP with stage 2's in-plane angle turned
    by k·360°/n (n = 1: PicoPose, stage 2's angle only); the PnP support then decides.
    confidence_model: the pose-confidence model (estimation/confidence.py): None = the shipped one,
    "none" = no confidence (PoseEstimate.confidence None), else a JSON file of `novel-pose confidence fit`.
    silhouette_alignment: fit each hypothesis' depth and image position to the detection mask before the
    silhouette choice compares them (estimation/silhouette_alignment.py; detections with a mask only; with depth the
    chosen pose only). Of the chosen pose alone it took lmo_real_val AR 0.247 -> 0.278; of every hypothesis,
    with templates_considered 8, 0.369 -> 0.417 (docs/ACCURACY.md).
    use_depth: auto | on | off (USE_DEPTH): read Frame.depth_m (auto: when the frame has it; on: a frame without it
    fails every detection with cause "depth_missing"; off: RGB only, as before depth existed). With depth, coarse
    correspondences with valid depth are solved by a 3D–3D rigid fit where it has the support (PnP otherwise) and
    the final pose is checked against the measured depth (docs/DEPTH.md); depth_fit_threshold_m: inlier distance of
    that fit; depth_icp_iterations: point-to-plane ICP steps of the final check (0 = the ray correction only).
    """

    network: str = "small_cnn"
    weights: Path | None = None
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "fp16"
    torch_autocast: str = "off"
    hypotheses: int = 5
    templates_considered: int = 8
    certainty_threshold: float = 0.5
    pnp_reprojection_px: float = 2.0
    pnp_iterations: int = 150
    min_mask_pixels: int = 64
    mask_query_background: bool = False
    template_level: int = 0
    max_batch: int = 32
    templates_dir: Path | None = None
    seed: int = 0
    pipeline: str = "picopose"
    coarse_weights: Path | None = None
    refiner_weights: Path | None = None
    selector_weights: Path | None = None
    refine_iterations: int = 1
    hypothesis_rule: str = "silhouette"
    picopose_mode: str = "auto"
    official_rules: tuple[str, ...] = ()
    min_inliers: int = 6
    inplane_hypotheses: int = 1
    confidence_model: str | None = None
    silhouette_alignment: bool = True
    use_depth: str = "auto"
    depth_fit_threshold_m: float = 0.01
    depth_icp_iterations: int = 3

    def __post_init__(self) -> None:
        problems = []
        if self.network not in CONFIGS:
            problems.append(f"network must be one of {sorted(CONFIGS)}, got '{self.network}'")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {BACKENDS}, got '{self.backend}'")
        if self.device not in ("cpu", "cuda"):
            problems.append(f"device must be 'cpu' or 'cuda', got '{self.device}'")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got '{self.precision}'")
        if self.torch_autocast not in ("off", "fp16", "bf16"):
            problems.append(f"torch_autocast must be off, fp16 or bf16, got '{self.torch_autocast}'")
        if not 1 <= self.hypotheses <= 64:
            problems.append(f"hypotheses must be in [1, 64], got {self.hypotheses}")
        if not 1 <= self.templates_considered <= 64:
            problems.append(f"templates_considered must be in [1, 64], got {self.templates_considered}")
        if not 0.0 <= self.certainty_threshold < 1.0:
            problems.append(f"certainty_threshold must be in [0, 1), got {self.certainty_threshold}")
        if not self.pnp_reprojection_px > 0:
            problems.append(f"pnp_reprojection_px must be positive, got {self.pnp_reprojection_px}")
        if self.pnp_iterations < 1 or self.min_mask_pixels < 1 or self.max_batch < 1:
            problems.append("pnp_iterations, min_mask_pixels and max_batch must be ≥ 1")
        if self.pipeline not in PIPELINES:
            problems.append(f"pipeline must be one of {PIPELINES}, got '{self.pipeline}'")
        if not 1 <= self.refine_iterations <= 10:
            problems.append(f"refine_iterations must be in [1, 10], got {self.refine_iterations}")
        if self.picopose_mode not in PICOPOSE_MODES:
            problems.append(f"picopose_mode must be one of {PICOPOSE_MODES}, got '{self.picopose_mode}'")
        from novel_pose_ros.estimation.official_picopose import OFFICIAL_RULES

        if set(self.official_rules) - set(OFFICIAL_RULES):
            problems.append(f"official_rules must be among {OFFICIAL_RULES}, got {tuple(self.official_rules)}")
        if self.hypothesis_rule not in HYPOTHESIS_RULES:
            problems.append(f"hypothesis_rule must be one of {HYPOTHESIS_RULES}, got '{self.hypothesis_rule}'")
        if self.inplane_hypotheses not in (1, 2, 4, 8):
            problems.append(f"inplane_hypotheses must be 1, 2, 4 or 8, got {self.inplane_hypotheses}")
        if self.min_inliers < 4:
            problems.append(f"min_inliers must be ≥ 4 (EPnP's minimum), got {self.min_inliers}")
        if self.template_level not in (0, 1, 2):
            problems.append(f"template_level must be 0, 1 or 2, got {self.template_level}")
        if self.use_depth not in USE_DEPTH:
            problems.append(f"use_depth must be one of {USE_DEPTH}, got '{self.use_depth}'")
        if not (np.isfinite(self.depth_fit_threshold_m) and 0 < self.depth_fit_threshold_m <= 0.1):
            problems.append(f"depth_fit_threshold_m must be in (0, 0.1] m, got {self.depth_fit_threshold_m}")
        if not 0 <= self.depth_icp_iterations <= 20:
            problems.append(f"depth_icp_iterations must be in [0, 20], got {self.depth_icp_iterations}")
        if problems:
            raise ValueError("EstimatorConfig: " + "; ".join(problems))
        for name in ("weights", "templates_dir", "coarse_weights", "refiner_weights", "selector_weights"):
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
