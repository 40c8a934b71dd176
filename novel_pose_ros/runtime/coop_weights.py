"""Which Co-op weights to run (refiner, coarse matcher, selector), and the back end that runs their graphs.

`load_coop_network(kind, checkpoint)` loads a Co-op checkpoint (the one given, else the shipped
models/<config>/<config>.ckpt). Without either, the refiner is built from the shipped PicoPose
weights with untrained Laplace-scale and sensitivity heads (said loudly: the flow it predicts is
PicoPose's matching, not trained for render-and-compare); the coarse matcher and the selector have
no such fallback (their heads mean nothing untrained) and raise an error naming the training config.
`create_coop_backend` exports the graphs to ONNX (cached per weights id, as PicoPose's) and runs them
through the back end runtime.choose_backend picks.
"""
from __future__ import annotations

import logging
from pathlib import Path

from novel_pose_ros.paths import share_dir
from novel_pose_ros.runtime.base import InferenceBackend

LOGGER = logging.getLogger(__name__)
DEFAULT_CONFIGS = {"coop_refiner": "coop_refiner_small", "coop_coarse": "coop_coarse_small",
                   "coop_selector": "coop_selector_small"}
TRAIN_CONFIGS = {"coop_refiner": "configs/train_refiner_small.yaml", "coop_coarse": "configs/train_coarse_small.yaml",
                 "coop_selector": "configs/train_selector_small.yaml"}


def shipped_coop_checkpoint(config_name: str) -> Path:
    return share_dir() / "models" / config_name / f"{config_name}.ckpt"


def _check_kind(kind: str) -> None:
    if kind not in DEFAULT_CONFIGS:
        raise ValueError(f"unknown Co-op network kind {kind!r} (known: {', '.join(DEFAULT_CONFIGS)})")


def load_coop_network(kind: str, checkpoint: str | Path | None, config_name: str | None = None):
    """(network in eval mode, weights id) of `kind` from `checkpoint`, else the shipped one (module docstring)."""
    from novel_pose_ros.training.coop_checkpoint import load_coop_checkpoint

    _check_kind(kind)
    config_name = config_name or DEFAULT_CONFIGS[kind]
    path = Path(checkpoint).expanduser() if checkpoint is not None else shipped_coop_checkpoint(config_name)
    if path.is_file():
        return load_coop_checkpoint(path, kind)
    if checkpoint is not None:
        raise FileNotFoundError(f"{kind} checkpoint {path} does not exist")
    if kind != "coop_refiner":
        raise FileNotFoundError(f"no trained {kind} weights: none given and none shipped at {path}; train them with "
                                f"`novel-pose train --config {TRAIN_CONFIGS[kind]}`")
    return _picopose_initialised_refiner(config_name)


def _picopose_initialised_refiner(config_name: str):
    from novel_pose_ros.networks.coop.refiner_net import CoopRefinerNet, get_refiner_config, load_picopose_weights
    from novel_pose_ros.runtime.weights import load_network, resolve_checkpoint

    config = get_refiner_config(config_name)
    picopose, picopose_id = load_network(config.picopose, resolve_checkpoint(config.picopose, None))
    net = CoopRefinerNet(config)
    load_picopose_weights(net, picopose.state_dict())
    LOGGER.warning("Co-op refiner '%s': no trained refiner weights (none given, none shipped); running PicoPose's "
                   "matcher with UNTRAINED Laplace-scale and sensitivity heads: refined poses are not meaningful",
                   config_name)
    return net.eval(), f"picopose-init-{picopose_id[:40]}"


def _exporter(kind: str):
    if kind == "coop_refiner":
        from novel_pose_ros.networks.coop.refiner_export import export_refiner_onnx as export
    elif kind == "coop_coarse":
        from novel_pose_ros.networks.coop.coarse_export import export_coarse_onnx as export
    else:
        from novel_pose_ros.networks.coop.selector_export import export_selector_onnx as export
    return export


def create_coop_backend(kind: str, backend: str, checkpoint: str | Path | None, device: str = "cpu",
                        onnx_cache: str | Path | None = None, config_name: str | None = None,
                        precision: str = "fp16", max_batch: int = 8) -> InferenceBackend:
    """A back end running the graphs of a Co-op network, chosen as PicoPose's (runtime.choose_backend); 'torch'
    is not offered for them (their graphs run through ONNX: ONNX Runtime or TensorRT)."""
    from novel_pose_ros.runtime import choose_backend, machine_capabilities, sidecar_backend
    from novel_pose_ros.runtime.weights import cached_export

    _check_kind(kind)
    if backend == "torch":
        raise ValueError(f"the Co-op networks run through ONNX: use backend 'auto', 'onnxruntime' or 'tensorrt' "
                         f"(got 'torch' for {kind})")
    chosen, device, reason = choose_backend(backend, device, *machine_capabilities())
    net, weights_id = load_coop_network(kind, checkpoint, config_name)
    name = net.config.name
    export = _exporter(kind)
    sidecar = cached_export(kind, f"{name}.json", f"{name}-{weights_id[:24]}", weights_id,
                            lambda folder: export(net, folder, weights_id), onnx_cache)
    LOGGER.info("%s '%s' on %s (%s)", kind, name, chosen, reason)
    return sidecar_backend(sidecar, backend, chosen, device, precision, max_batch)
