"""Configuration of Co-op coarse-matcher training: nested frozen dataclasses, loaded from YAML, validated.

    config = load_coop_train_config("configs/train_coarse_small.yaml")   # training/coop_config.py

A training YAML is a coarse one when its `network` names a Co-op coarse config (`coop_coarse_small`);
`novel-pose train` dispatches on that (training/coop_config.py). Sections `run`, `data`, `optim` are training/config.py's
(of DataConfig: the scene, visibility, appearance, grey-template, box-only, template_level /
nearest_templates and augmentation keys apply; the InfoNCE keys do not). Every section is optional;
unknown keys are errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from novel_pose_ros.networks.coop.coarse_config import CoopCoarseConfig, get_coarse_config
from novel_pose_ros.networks.coop.coarse_loss import OFFSET_WEIGHT
from novel_pose_ros.training.config import DataConfig, OptimConfig, PairValidationConfig, RunConfig, _check, plain_data


@dataclass(frozen=True)
class CoarseLossConfig:
    """networks/coop/coarse_loss.py: cross-entropy (no_match_weight on the "no match" class) + offset_weight × L1."""

    no_match_weight: float = 1.0
    offset_weight: float = OFFSET_WEIGHT

    def __post_init__(self) -> None:
        _check(self.no_match_weight > 0 and self.offset_weight >= 0, "loss: no_match_weight > 0, offset_weight ≥ 0")


@dataclass(frozen=True)
class CoarseTrainConfig:
    """network: a Co-op coarse config name; the encoder starts from the PicoPose weights of the config's
    backbone (picopose_weights, None: the shipped ones) and, with freeze_backbone, stays frozen (only the
    token projection, decoder and heads train: what a CPU can afford); far_template_probability: pairs
    whose template is any view (mostly "no match"), not one of the nearest; run.init_weights, when set,
    is a coarse checkpoint to start from instead (new schedule)."""

    network: str = "coop_coarse_small"
    picopose_weights: Path | None = None
    freeze_backbone: bool = True
    far_template_probability: float = 0.1
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir=Path("runs/train_coarse")))
    data: DataConfig = field(default_factory=lambda: DataConfig(template_level=0, nearest_templates=2))
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: CoarseLossConfig = field(default_factory=CoarseLossConfig)
    validation: PairValidationConfig = field(default_factory=PairValidationConfig)

    def __post_init__(self) -> None:
        _check(isinstance(self.network, str), f"network must be a Co-op coarse config name, got {self.network!r}")
        _check(0 <= self.far_template_probability <= 1, "far_template_probability must be in [0, 1]")
        self.network_config()

    def network_config(self) -> CoopCoarseConfig:
        return get_coarse_config(self.network)

    def to_dict(self) -> dict:
        return plain_data(self)
