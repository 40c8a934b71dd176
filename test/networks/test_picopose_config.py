import pytest

from novel_pose_ros.networks.picopose.config import (
    CONFIGS,
    AffineConfig,
    DPTConfig,
    FlowDecoderConfig,
    PicoPoseConfig,
    ViTConfig,
    get_config,
)


def test_named_configs_round_trip_through_dicts():
    assert set(CONFIGS) == {"official", "small", "small_cnn"}
    for config in CONFIGS.values():
        assert PicoPoseConfig.from_dict(config.to_dict()) == config
    official = get_config("official")
    assert (official.backbone.embed_dim, official.backbone.depth, official.backbone.num_heads) == (1024, 24, 16)
    assert official.backbone.out_blocks == (5, 11, 17, 23) and official.dpt.out_channels == (256, 512, 1024, 1024)


@pytest.mark.parametrize("build, message", [
    (lambda: ViTConfig(embed_dim=100, num_heads=3), "not divisible by num_heads"),
    (lambda: ViTConfig(depth=12, out_blocks=(2, 5, 8, 12)), "out_blocks must be 4 increasing indices in \\[0, 12\\)"),
    (lambda: ViTConfig(patch_size=16), "patch_size must be 14"),
    (lambda: AffineConfig(hidden_dim=48, gn_groups=32), "not divisible by gn_groups"),
    (lambda: DPTConfig(out_channels=(1, 2, 3)), "4 entries"),
    (lambda: FlowDecoderConfig(corr_mode="dense"), "'all_pairs' or 'local'"),
    (lambda: FlowDecoderConfig(motion_dim=2), "motion_dim must be > 2"),
    (lambda: PicoPoseConfig(name="x", flow=FlowDecoderConfig(proj_dim=64)), "must equal dpt.features"),
    (lambda: PicoPoseConfig(name=""), "non-empty identifier"),
    (lambda: PicoPoseConfig.from_dict({"name": "x", "head": {}}), "unknown keys"),
    (lambda: get_config("tiny"), "known: official, small, small_cnn"),
])
def test_invalid_configs_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()
