"""Which Co-op training a YAML asks for, read in one place: the `network` key names a Co-op refiner,
coarse or selector configuration (training/refiner_config.py, coarse_config.py, selector_config.py).

    config = load_coop_train_config("configs/train_coarse_small.yaml", {"run": {"steps": 10}})
    summary = train_coop(config)          # what `novel-pose train` runs for it
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from novel_pose_ros.training.config import _build, read_config_file
from novel_pose_ros.yaml_files import read_yaml


def _classes() -> dict[str, type]:
    from novel_pose_ros.networks.coop.coarse_config import COARSE_CONFIGS
    from novel_pose_ros.networks.coop.refiner_net import REFINER_CONFIGS
    from novel_pose_ros.networks.coop.selector_net import SELECTOR_CONFIGS
    from novel_pose_ros.training.coarse_config import CoarseTrainConfig
    from novel_pose_ros.training.refiner_config import RefinerTrainConfig
    from novel_pose_ros.training.selector_config import SelectorTrainConfig

    return {**{n: RefinerTrainConfig for n in REFINER_CONFIGS}, **{n: CoarseTrainConfig for n in COARSE_CONFIGS},
            **{n: SelectorTrainConfig for n in SELECTOR_CONFIGS}}


def coop_config_class(values: Any) -> type | None:
    """The training-config class of a YAML mapping whose `network` names a Co-op config; None otherwise."""
    network = values.get("network") if isinstance(values, dict) else None
    return _classes().get(network) if isinstance(network, str) else None


def is_coop_config_file(path: str | Path) -> bool:
    return coop_config_class(read_yaml(Path(path).expanduser(), "training config")) is not None


def coop_train_config_from_dict(values: dict, where: str = "Co-op training config"):
    cls = coop_config_class(values)
    if cls is None:
        raise ValueError(f"{where}: `network` must name a Co-op refiner, coarse or selector config "
                         f"({', '.join(sorted(_classes()))}), got {values.get('network')!r}")
    return _build(cls, values, where)


def load_coop_train_config(path: str | Path, overrides: dict | None = None):
    """Read a Co-op training YAML; `overrides` ({"run": {"steps": 10}, ...}) are merged in first."""
    path = Path(path).expanduser()
    cls = coop_config_class(read_yaml(path, "training config"))
    if cls is None:
        raise ValueError(f"{path}: `network` names no Co-op config ({', '.join(sorted(_classes()))})")
    return read_config_file(cls, path, overrides, "Co-op training config")


def train_coop(config, resume: bool = False, show_progress: bool = True):
    """Run the trainer of a Co-op training config (TrainSummary)."""
    from novel_pose_ros.training.coarse_config import CoarseTrainConfig
    from novel_pose_ros.training.refiner_config import RefinerTrainConfig

    if isinstance(config, RefinerTrainConfig):
        from novel_pose_ros.training.refiner_trainer import RefinerTrainer as trainer
    elif isinstance(config, CoarseTrainConfig):
        from novel_pose_ros.training.coarse_trainer import CoarseTrainer as trainer
    else:
        from novel_pose_ros.training.selector_trainer import SelectorTrainer as trainer
    return trainer(config, resume, show_progress=show_progress).run()
