"""Configuration of Co-op selector training: nested frozen dataclasses, loaded from YAML, validated.

    config = load_coop_train_config("configs/train_selector_small.yaml")   # training/coop_config.py

A training YAML is a selector one when its `network` names a Co-op selector config
(`coop_selector_small`); `novel-pose train` dispatches on that (training/coop_config.py). Sections
`run`, `data`, `optim` are training/config.py's RunConfig, DataConfig, OptimConfig (of DataConfig,
the scene, visibility, appearance, grey-template (here: grey render) and augmentation keys apply;
the template, box and InfoNCE keys do not). Every section is optional; unknown keys are errors.
Hypotheses: 1 positive (within 5° and (0.01, 0.01, 0.05) m of the GT) and `negatives` negatives per
query (the paper's 5; networks/coop/selector_loss.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from novel_pose_ros.networks.coop.selector_net import CoopSelectorConfig, get_selector_config
from novel_pose_ros.training.config import DataConfig, OptimConfig, RunConfig, _check, plain_data


@dataclass(frozen=True)
class SelectorValidationConfig:
    """Every every_steps: val_bce, val_accuracy and val_top1 (fraction of groups whose positive has the
    highest logit) on `groups` fixed groups of the held-out ("validation") objects, drawn from `seed`."""

    every_steps: int = 250
    groups: int = 16
    seed: int = 12345

    def __post_init__(self) -> None:
        _check(self.every_steps >= 1 and self.groups >= 0 and self.seed >= 0,
               "validation: every_steps ≥ 1, groups ≥ 0, seed ≥ 0")


@dataclass(frozen=True)
class SelectorTrainConfig:
    """network: a Co-op selector config name; init_from_picopose: the backbone from PicoPose weights
    (picopose_weights, None: the shipped ones of the selector's PicoPose config); freeze_backbone: keep
    that backbone fixed (no gradient, BatchNorm and dropout in eval mode) and train decoder and head
    only; negatives: bad hypotheses per group (run.batch_size counts groups: batch_size × (1 +
    negatives) pairs per step); window_margin: the refiner window's margin, as the estimator uses it
    (estimation/refiner_geometry.refiner_window). run.init_weights, when set, is a selector checkpoint
    to start from instead (new schedule)."""

    network: str = "coop_selector_small"
    init_from_picopose: bool = True
    picopose_weights: Path | None = None
    freeze_backbone: bool = True
    negatives: int = 5
    window_margin: float = 0.2
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir=Path("runs/train_selector")))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: SelectorValidationConfig = field(default_factory=SelectorValidationConfig)

    def __post_init__(self) -> None:
        _check(isinstance(self.network, str), f"network must be a Co-op selector config name, got {self.network!r}")
        self.network_config()
        _check(isinstance(self.negatives, int) and self.negatives >= 1, f"negatives must be ≥ 1, got {self.negatives}")
        _check(0 <= self.window_margin <= 1, f"window_margin must be in [0, 1], got {self.window_margin}")

    def network_config(self) -> CoopSelectorConfig:
        return get_selector_config(self.network)

    def to_dict(self) -> dict:
        return plain_data(self)
