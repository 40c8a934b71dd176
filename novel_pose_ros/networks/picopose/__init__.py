"""PicoPose networks: configurations, modules, checkpoints, ONNX export and input preprocessing.

Facts: shared/design/METHODS.md ("PicoPose"). The `official` config loads the official Lightning
checkpoints strictly; `small` (ViT-S/14-like) and `small_cnn` (EfficientNet-Lite0) are CPU-sized.
"""
from novel_pose_ros.networks.picopose.affine_regressor import (
    AffinePrediction,
    affine_from_prediction,
    similarity_volume,
    template_patch_mask,
)
from novel_pose_ros.networks.picopose.checkpoint import (
    inspect_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from novel_pose_ros.networks.picopose.config import CONFIGS, OFFICIAL, SMALL, SMALL_CNN, PicoPoseConfig, get_config
from novel_pose_ros.networks.picopose.flow_decoder import initial_flow
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet, build_network
from novel_pose_ros.networks.picopose.preprocessing import to_network_input

__all__ = [
    "AffinePrediction", "CONFIGS", "OFFICIAL", "SMALL", "SMALL_CNN", "PicoPoseConfig", "PicoPoseNet",
    "affine_from_prediction", "build_network", "get_config", "initial_flow", "inspect_checkpoint", "load_weights",
    "read_checkpoint", "save_checkpoint", "similarity_volume", "template_patch_mask", "to_network_input",
]
