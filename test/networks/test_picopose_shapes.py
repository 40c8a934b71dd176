"""Tensor shapes of every stage (batch 1 and 3) and shape errors that state expected vs actual."""
import pytest
import torch

from novel_pose_ros.networks.picopose.affine_regressor import similarity_volume, template_patch_mask
from novel_pose_ros.networks.picopose.config import OFFICIAL, SMALL, SMALL_CNN
from novel_pose_ros.networks.picopose.flow_decoder import initial_flow
from novel_pose_ros.networks.picopose.picopose_net import build_network


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return build_network(SMALL)


def _check_stages(net, batch):
    C, F = net.config.backbone.out_dim, net.config.dpt.features
    image = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        maps = net.extract(image)
        assert [tuple(m.shape) for m in maps] == [(batch, C, 16, 16)] * 4
        mask16 = template_patch_mask((torch.rand(batch, 224, 224) > 0.5).float())
        volume = similarity_volume(maps[-1], maps[-1].flip(0), mask16)
        assert volume.shape == (batch, 256, 16, 16)
        prediction = net.affine_regressor(volume)
        assert [tuple(t.shape) for t in prediction] == [(batch, 2), (batch, 1), (batch, 2)]
        assert torch.allclose(prediction.cos_sin.norm(dim=1), torch.ones(batch), atol=1e-5)
        feats = net.offset_regressor.dpt_head(maps)
        assert [tuple(f.shape) for f in feats] == [(batch, F, n, n) for n in (16, 32, 64)]
        flow0, cert0 = initial_flow(torch.eye(3).repeat(batch, 1, 1), mask16)
        assert flow0.shape == (batch, 2, 16, 16) and cert0.shape == (batch, 1, 16, 16)
        flows, certs = net.offset_regressor.flow_decoder(feats, feats, flow0, cert0)
        assert [tuple(f.shape) for f in flows] == [(batch, 2, n, n) for n in (16, 32, 64)]
        assert [tuple(c.shape) for c in certs] == [(batch, 1, n, n) for n in (16, 32, 64)]


@pytest.mark.parametrize("batch", [1, 3])
def test_small_stage_shapes(small_net, batch):
    _check_stages(small_net, batch)


@pytest.mark.parametrize("batch", [1, 3])
def test_small_cnn_stage_shapes(batch):
    torch.manual_seed(0)
    _check_stages(build_network(SMALL_CNN), batch)


@pytest.mark.slow
def test_official_stage_shapes():
    torch.manual_seed(0)
    _check_stages(build_network(OFFICIAL), 1)


def test_full_forward_outputs(small_net):
    B = 2
    with torch.no_grad():
        out = small_net(torch.randn(B, 3, 224, 224), torch.randn(B, 3, 224, 224), torch.ones(B, 224, 224),
                        torch.full((B, 2), 112.0))
    assert out["affine"].shape == (B, 2, 3)
    assert out["flow_64"].shape == (B, 2, 64, 64) and out["certainty_64"].shape == (B, 1, 64, 64)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_shape_errors_state_expected_and_actual(small_net):
    with pytest.raises(ValueError, match=r"image: expected shape \(B, 3, 224, 224\), got \(1, 3, 256, 256\)"):
        small_net.extract(torch.zeros(1, 3, 256, 256))
    maps = [torch.zeros(1, 384, 16, 16)] * 3 + [torch.zeros(1, 384, 8, 8)]
    with pytest.raises(ValueError, match=r"backbone map 3: expected shape \(B, 384, 16, 16\), got \(1, 384, 8, 8\)"):
        small_net.offset_regressor.dpt_head(maps)
    with pytest.raises(ValueError, match="share one batch size"):
        similarity_volume(torch.zeros(2, 8, 16, 16), torch.zeros(3, 8, 16, 16), torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match=r"init_flow: expected shape \(B, 2, 16, 16\)"):
        feats = [torch.zeros(1, 32, n, n) for n in (16, 32, 64)]
        small_net.offset_regressor.flow_decoder(feats, feats, torch.zeros(1, 2, 32, 32), torch.zeros(1, 1, 16, 16))
