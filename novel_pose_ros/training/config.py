"""Training configuration: nested frozen dataclasses, loaded from YAML and validated in one place.

    config = load_train_config("configs/train_small.yaml")

Every section is optional in the YAML (defaults below); an unknown key is an error naming it.
Units are in the names (`_m`, `_px`, `_deg`). `network` is a PicoPose config name (`small_cnn`,
`small`, ...) or a full PicoPoseConfig mapping (tests use a tiny one).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from novel_pose_ros.networks.picopose.config import PicoPoseConfig, get_config
from novel_pose_ros.training.augment import AugmentSettings
from novel_pose_ros.yaml_files import read_yaml


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _range(owner: str, name: str, value: tuple, low: float = 0.0) -> None:
    _check(len(value) == 2 and low <= value[0] <= value[1], f"{owner}.{name}: expected ({low} ≤ min ≤ max), got {value}")


@dataclass(frozen=True)
class DataConfig:
    """How training pairs are made (training/pairs.py).

    meshes_dir: the training-mesh folder (None: the user cache); objects: restrict to these manifest
    names (empty: every object of the split); group_weights: share of object draws per group
    (training/objects.py: random, ycb, named); template_level / nearest_templates: the template is one
    of the `nearest_templates` views of this icosphere level closest to the query's view;
    min_visib_fract / min_visible_px: which instances may be queries; box_only_probability: crop around
    a jittered box instead of the mask (each box side moves by up to box_jitter × its size);
    random_appearance_probability: an instance shows a random appearance instead of its own (for
    geometry-only meshes; textured_random_appearance_probability for textured ones);
    grey_template_probability: the template of a query with colours is the grey geometry-only render;
    visibility_tolerance_m / visibility_tolerance_diameter: depth agreement for GT visibility
    (max of the two); scene: SynthSettings overrides (objects_per_scene, focal_jitter, ...);
    photo_background_probability / photo_plane_probability / photo_texture_probability: a real photograph
    (training/photos.py) instead of a procedural texture behind the scene, on the support plane and on a
    randomly textured object.
    """

    meshes_dir: Path | None = None
    objects: tuple[str, ...] = ()
    group_weights: dict = field(default_factory=lambda: {"random": 0.45, "ycb": 0.4, "named": 0.15})
    template_level: int = 1
    nearest_templates: int = 5
    min_visib_fract: float = 0.3
    min_visible_px: int = 1024
    box_only_probability: float = 0.3
    box_jitter: float = 0.1
    random_appearance_probability: float = 0.7
    textured_random_appearance_probability: float = 0.3
    grey_template_probability: float = 0.5
    visibility_tolerance_m: float = 0.003
    visibility_tolerance_diameter: float = 0.01
    images_per_layout: int = 2
    queries_per_image: int = 3
    infonce_max_pairs: int = 64
    template_cache_views: int = 512
    photo_background_probability: float = 0.0
    photo_plane_probability: float = 0.0
    photo_texture_probability: float = 0.0
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    scene: dict = field(default_factory=lambda: {"objects_per_scene": (3, 7), "in_air_probability": 0.5,
                                                 "focal_jitter": 0.3, "roll_rad": 3.14159, "distance_factor": (0.5, 1.1)})

    def __post_init__(self) -> None:
        o = "data"
        _check(self.template_level in (0, 1, 2), f"{o}.template_level must be 0, 1 or 2, got {self.template_level}")
        _check(self.nearest_templates >= 1, f"{o}.nearest_templates must be ≥ 1")
        for name in ("min_visib_fract", "box_only_probability", "random_appearance_probability",
                     "textured_random_appearance_probability", "grey_template_probability",
                     "photo_background_probability", "photo_plane_probability", "photo_texture_probability"):
            _check(0 <= getattr(self, name) <= 1, f"{o}.{name} must be in [0, 1], got {getattr(self, name)}")
        _check(self.min_visible_px >= 1 and self.images_per_layout >= 1 and self.queries_per_image >= 1
               and self.infonce_max_pairs >= 1 and self.template_cache_views >= 1,
               f"{o}: counts must be ≥ 1")
        _check(self.box_jitter >= 0 and self.visibility_tolerance_m > 0 and self.visibility_tolerance_diameter >= 0,
               f"{o}: box_jitter and visibility tolerances must be ≥ 0 (absolute > 0)")
        self.synth_settings()  # validates the scene overrides

    def visibility_tolerance(self, diameter_m: float) -> float:
        """Depth agreement (metres) for GT visibility of an object of this diameter: the larger of the two."""
        return max(self.visibility_tolerance_m, self.visibility_tolerance_diameter * float(diameter_m))

    def synth_settings(self):
        from novel_pose_ros.synth import SynthSettings

        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(self.scene).items()}
        try:
            return SynthSettings(**values)
        except TypeError as exc:
            raise ValueError(f"data.scene: {exc}") from None


@dataclass(frozen=True)
class OptimConfig:
    """AdamW; lr for the heads, backbone_lr for the (pretrained) backbone; linear warm-up then cosine decay
    to min_lr_ratio × lr; gradients clipped at grad_clip_norm (0: off); freeze_backbone_bn keeps the
    backbone's BatchNorm statistics (small batches)."""

    lr: float = 3e-4
    backbone_lr: float = 5e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05
    grad_clip_norm: float = 5.0
    freeze_backbone_bn: bool = True

    def __post_init__(self) -> None:
        _check(self.lr > 0 and self.backbone_lr >= 0 and self.weight_decay >= 0,
               "optim: lr must be > 0, backbone_lr and weight_decay ≥ 0")
        _check(self.warmup_steps >= 0 and 0 <= self.min_lr_ratio <= 1 and self.grad_clip_norm >= 0,
               "optim: warmup_steps ≥ 0, min_lr_ratio in [0, 1], grad_clip_norm ≥ 0")


@dataclass(frozen=True)
class LossConfig:
    """METHODS.md: InfoNCE τ 0.1; L1 translation/14, L2 log scale, geodesic in-plane; flow L1 × 0.1 where valid and
    |flow| < max_flow, BCE certainty × 1; total clamped at total_clamp."""

    infonce_tau: float = 0.1
    infonce_weight: float = 1.0
    translation_weight: float = 1.0
    scale_weight: float = 1.0
    inplane_weight: float = 1.0
    flow_weight: float = 0.1
    certainty_weight: float = 1.0
    max_flow: float = 400.0
    total_clamp: float = 100.0

    def __post_init__(self) -> None:
        _check(self.infonce_tau > 0 and self.max_flow > 0 and self.total_clamp > 0, "loss: tau, max_flow, total_clamp > 0")
        _check(min(self.infonce_weight, self.translation_weight, self.scale_weight, self.inplane_weight,
                   self.flow_weight, self.certainty_weight) >= 0, "loss: weights must be ≥ 0")


@dataclass(frozen=True)
class NoiseConfig:
    """Stage 3 starts from the GT affine plus noise (METHODS.md); per pair, each std is drawn in its range."""

    scale_std: tuple[float, float] = (0.01, 0.2)
    rotation_std_deg: tuple[float, float] = (1.0, 15.0)
    rotation_clamp_deg: float = 45.0
    translation_std_px: tuple[float, float] = (2.0, 20.0)
    translation_clamp_px: float = 56.0

    def __post_init__(self) -> None:
        for name in ("scale_std", "rotation_std_deg", "translation_std_px"):
            _range("noise", name, getattr(self, name))
        _check(self.rotation_clamp_deg >= 0 and self.translation_clamp_px >= 0, "noise: clamps must be ≥ 0")


@dataclass(frozen=True)
class ValidationConfig:
    """Held-out objects only. pairs: fixed validation pairs (losses) each time; ar: also BOP AR through
    eval-run + eval on a synthetic dataset of ar_objects validation objects (ar_scenes × ar_images_per_scene),
    with the estimator's backend, hypotheses and template_level (0 = the 42 views deployed by default)."""

    every_steps: int = 2000
    pairs: int = 32
    ar: bool = True
    ar_objects: int = 8
    ar_scenes: int = 4
    ar_images_per_scene: int = 3
    backend: str = "torch"
    hypotheses: int = 5
    template_level: int = 0
    seed: int = 12345

    def __post_init__(self) -> None:
        _check(self.every_steps >= 1 and self.pairs >= 0 and self.ar_objects >= 1 and self.ar_scenes >= 1
               and self.ar_images_per_scene >= 1 and self.hypotheses >= 1, "validation: counts must be ≥ 1 (pairs ≥ 0)")
        _check(self.backend in ("torch", "onnxruntime", "auto"), f"validation.backend: unknown '{self.backend}'")
        _check(self.template_level in (0, 1, 2), f"validation.template_level must be 0, 1 or 2, got {self.template_level}")


@dataclass(frozen=True)
class RunConfig:
    """out_dir: checkpoints, logs, plots; steps: optimiser steps; batch_size: pairs per step and process;
    num_workers: data processes (0: in the training process); threads: torch threads (0: torch's default);
    init_weights: a checkpoint whose weights start this run (a new schedule; e.g. the shipped model, to
    continue training it in another session); ignored with --resume. max_minutes: a wall-time limit of the
    loop (None: none): the run then ends at the first step done after that many minutes (at least one step),
    with its checkpoint and final validation as at run.steps (training/loop.py)."""

    out_dir: Path = Path("runs/train")
    steps: int = 100000
    batch_size: int = 8
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 1
    threads: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    init_weights: Path | None = None
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        _check(self.steps >= 1 and self.batch_size >= 1 and self.log_every >= 1 and self.checkpoint_every >= 1
               and self.keep_checkpoints >= 1, "run: steps, batch_size, log_every, checkpoint_every, keep_checkpoints ≥ 1")
        _check(self.num_workers >= 0 and self.threads >= 0 and self.seed >= 0, "run: num_workers, threads, seed ≥ 0")
        _check(self.device in ("cpu", "cuda", "auto"), f"run.device must be cpu, cuda or auto, got '{self.device}'")
        _check(self.max_minutes is None or self.max_minutes > 0, f"run.max_minutes must be > 0 (or null), got "
                                                                   f"{self.max_minutes}")


@dataclass(frozen=True)
class PairValidationConfig:
    """Co-op refiner and coarse trainers: every every_steps, their validation measures on `pairs` fixed
    pairs of the held-out ("validation") objects, drawn from `seed`."""

    every_steps: int = 250
    pairs: int = 32
    seed: int = 12345

    def __post_init__(self) -> None:
        _check(self.every_steps >= 1 and self.pairs >= 0 and self.seed >= 0,
               "validation: every_steps ≥ 1, pairs ≥ 0, seed ≥ 0")


@dataclass(frozen=True)
class TrainConfig:
    network: Any = "small_cnn"
    pretrained_backbone: bool = True
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        self.network_config()

    def network_config(self) -> PicoPoseConfig:
        if isinstance(self.network, str):
            return get_config(self.network)
        if isinstance(self.network, PicoPoseConfig):
            return self.network
        if isinstance(self.network, dict):
            return PicoPoseConfig.from_dict(self.network)
        raise ValueError(f"network must be a config name or a mapping, got {type(self.network).__name__}")

    def to_dict(self) -> dict:
        return plain_data(self)


def plain_data(value: Any) -> Any:
    """A config as YAML/JSON-ready data: dataclasses → dicts, tuples → lists, paths → strings (recursively)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain_data(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


def _build(cls, values: Any, where: str):
    """Instantiate dataclass `cls` from a mapping, recursively; unknown keys are errors."""
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, f"{where}.{name}")
        elif kind in (Path, Path | None) or (isinstance(kind, types.UnionType) and Path in kind.__args__):
            kwargs[name] = None if value is None else Path(value).expanduser()
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


def train_config_from_dict(values: dict, where: str = "train config") -> TrainConfig:
    return _build(TrainConfig, values, where)


def load_train_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML training config; `overrides` ({"run": {"device": "cuda"}, ...}) are merged in first."""
    return read_config_file(TrainConfig, path, overrides, "training config")


def read_config_file(cls, path: str | Path, overrides: dict | None, what: str):
    """Config dataclass `cls` (nested, validated as `_build` does) from the YAML at `path`, with
    `overrides` ({section: {key: value}}) merged into its sections first."""
    path = Path(path).expanduser()
    values = read_yaml(path, what)
    for section, entries in (overrides or {}).items():
        values.setdefault(section, {})
        values[section] = {**(values[section] or {}), **entries}
    return _build(cls, values, f"{what} {path}")
