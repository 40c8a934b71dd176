"""Configuration of Co-op refiner training: nested frozen dataclasses, loaded from YAML, validated.

    config = load_coop_train_config("configs/train_refiner_small.yaml")   # training/coop_config.py

A training YAML is a refiner one when its `network` names a Co-op refiner config
(`coop_refiner_small`); `novel-pose train` dispatches on that (training/coop_config.py). Sections
`run`, `data`, `optim` are training/config.py's RunConfig, DataConfig, OptimConfig (of DataConfig,
the scene, visibility, appearance, grey-template (here: grey render) and augmentation keys apply;
the template, box and InfoNCE keys do not). Every section is optional; unknown keys are errors.
Units in the names; noise and solver defaults are the paper's (shared/design/METHODS.md, "Co-op").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from novel_pose_ros.networks.coop.refiner_net import CoopRefinerConfig, get_refiner_config
from novel_pose_ros.training.config import DataConfig, OptimConfig, PairValidationConfig, RunConfig, _check, plain_data


@dataclass(frozen=True)
class PoseNoiseConfig:
    """T_cur = T_gt perturbed in the camera frame: t + N(0, translation_std_m) per axis (x, y, z);
    R ← exp(ω) R with ω ~ N(0, rotation_std_deg) per axis (rotation about the object origin).
    Pairs whose noise exceeds max_rotation_deg or puts the object behind the camera are drawn again."""

    translation_std_m: tuple[float, float, float] = (0.01, 0.01, 0.05)
    rotation_std_deg: float = 15.0
    max_rotation_deg: float = 90.0

    def __post_init__(self) -> None:
        _check(len(self.translation_std_m) == 3 and all(v >= 0 for v in self.translation_std_m),
               f"noise.translation_std_m: expected three values ≥ 0, got {self.translation_std_m}")
        _check(self.rotation_std_deg >= 0 and 0 < self.max_rotation_deg <= 180,
               "noise: rotation_std_deg ≥ 0, max_rotation_deg in (0, 180]")


@dataclass(frozen=True)
class SolverConfig:
    """The pose solve inside the loss, as at run time (estimation/refiner_stage.py RefinerSettings):
    window_margin: window enlargement per side; flow_radius_cells: R of the flow probability
    1 − exp(−R/b) in 4-px cells; lm_iterations then gn_iterations of the weighted LM-PnP."""

    window_margin: float = 0.2
    flow_radius_cells: float = 0.5
    lm_iterations: int = 3
    gn_iterations: int = 7

    def __post_init__(self) -> None:
        _check(0 <= self.window_margin <= 1 and self.flow_radius_cells > 0,
               "solver: window_margin in [0, 1], flow_radius_cells > 0")
        _check(self.lm_iterations >= 0 and self.gn_iterations >= 0 and self.lm_iterations + self.gn_iterations >= 1,
               "solver: lm_iterations, gn_iterations ≥ 0, at least one in all")


@dataclass(frozen=True)
class RefinerLossConfig:
    """Loss = flow_weight × Laplace NLL (visible cells) + certainty_weight × BCE (render-valid cells)
    + pose_weight × disentangled point matching (model_points points of the mesh, metres)."""

    flow_weight: float = 1.0
    certainty_weight: float = 5.0
    pose_weight: float = 20.0
    model_points: int = 256

    def __post_init__(self) -> None:
        _check(min(self.flow_weight, self.certainty_weight, self.pose_weight) >= 0, "loss: weights must be ≥ 0")
        _check(self.model_points >= 4, "loss.model_points must be ≥ 4")


@dataclass(frozen=True)
class RefinerTrainConfig:
    """network: a Co-op refiner config name; init_from_picopose: start backbone, DPT head and decoder
    from PicoPose weights (picopose_weights, None: the shipped ones of the refiner's PicoPose config);
    run.init_weights, when set, is a refiner checkpoint to start from instead (new schedule)."""

    network: str = "coop_refiner_small"
    init_from_picopose: bool = True
    picopose_weights: Path | None = None
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir=Path("runs/train_refiner")))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    noise: PoseNoiseConfig = field(default_factory=PoseNoiseConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    loss: RefinerLossConfig = field(default_factory=RefinerLossConfig)
    validation: PairValidationConfig = field(default_factory=PairValidationConfig)

    def __post_init__(self) -> None:
        _check(isinstance(self.network, str), f"network must be a Co-op refiner config name, got {self.network!r}")
        self.network_config()

    def network_config(self) -> CoopRefinerConfig:
        return get_refiner_config(self.network)

    def to_dict(self) -> dict:
        return plain_data(self)
