"""Which Co-op refiner weights to run, and the back end that runs its "refiner" graph.

`create_refiner_backend` loads a refiner checkpoint (the one given, else the shipped
models/<config>/<config>.ckpt); with neither it builds the refiner from the shipped
PicoPose weights with untrained Laplace-scale and sensitivity heads and says so loudly (the flow
it predicts is PicoPose's matching, not trained for render-and-compare). The ONNX export is
cached per weights id, as PicoPose's.
"""
from __future__ import annotations

import logging
from pathlib import Path

from novel_pose_ros.networks.coop.refiner_net import CoopRefinerNet, get_refiner_config, load_picopose_weights
from novel_pose_ros.paths import share_dir
from novel_pose_ros.runtime.base import InferenceBackend

LOGGER = logging.getLogger(__name__)
DEFAULT_REFINER = "coop_refiner_small"


def shipped_refiner_checkpoint(config_name: str = DEFAULT_REFINER) -> Path:
    return share_dir() / "models" / config_name / f"{config_name}.ckpt"


def load_refiner(checkpoint: str | Path | None, config_name: str = DEFAULT_REFINER) -> tuple[CoopRefinerNet, str]:
    """(refiner network in eval mode, weights id) from `checkpoint`, else the shipped one, else PicoPose-initialised."""
    from novel_pose_ros.training.refiner_checkpoint import load_refiner_checkpoint

    path = Path(checkpoint).expanduser() if checkpoint is not None else shipped_refiner_checkpoint(config_name)
    if path.is_file():
        return load_refiner_checkpoint(path)
    if checkpoint is not None:
        raise FileNotFoundError(f"refiner checkpoint {path} does not exist")
    from novel_pose_ros.runtime.weights import load_network, resolve_checkpoint

    config = get_refiner_config(config_name)
    picopose, picopose_id = load_network(config.picopose, resolve_checkpoint(config.picopose, None))
    net = CoopRefinerNet(config)
    load_picopose_weights(net, picopose.state_dict())
    LOGGER.warning("Co-op refiner '%s': no trained refiner weights (none given, none shipped); running PicoPose's "
                   "matcher with UNTRAINED Laplace-scale and sensitivity heads: refined poses are not meaningful",
                   config_name)
    return net.eval(), f"picopose-init-{picopose_id[:40]}"


def create_refiner_backend(backend: str, checkpoint: str | Path | None, device: str = "cpu",
                           onnx_cache: str | Path | None = None, config_name: str = DEFAULT_REFINER,
                           precision: str = "fp16", max_batch: int = 8) -> InferenceBackend:
    """A back end running the refiner graph, chosen as PicoPose's (runtime.choose_backend); 'torch' is not
    offered for it (its graph is run through ONNX: ONNX Runtime or TensorRT)."""
    from novel_pose_ros.networks.coop.refiner_export import export_refiner_onnx
    from novel_pose_ros.runtime import choose_backend, machine_capabilities, sidecar_backend
    from novel_pose_ros.runtime.weights import cached_export

    if backend == "torch":
        raise ValueError("the Co-op refiner runs through ONNX: use backend 'auto', 'onnxruntime' or 'tensorrt'")
    chosen, device, reason = choose_backend(backend, device, *machine_capabilities())
    net, weights_id = load_refiner(checkpoint, config_name)
    sidecar = cached_export("coop_refiner", f"{config_name}.json", f"{config_name}-{weights_id[:24]}", weights_id,
                            lambda folder: export_refiner_onnx(net, folder, weights_id), onnx_cache)
    LOGGER.info("Co-op refiner on %s (%s)", chosen, reason)
    return sidecar_backend(sidecar, backend, chosen, device, precision, max_batch)
