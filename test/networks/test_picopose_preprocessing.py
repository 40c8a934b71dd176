import numpy as np
import pytest

from novel_pose_ros.networks.picopose.preprocessing import CLIP_MEAN, CLIP_STD, from_network_input, to_network_input


def test_rgb_crop_becomes_bgr_with_clip_statistics_in_published_order():
    crop = np.zeros((224, 224, 3), np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 255, 128, 0  # R, G, B
    x = to_network_input(crop)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    # channel 0 is blue, normalised with the first CLIP mean/std entries
    assert x[0, 0, 5, 5] == pytest.approx((0.0 - CLIP_MEAN[0]) / CLIP_STD[0], abs=1e-6)
    assert x[0, 1, 5, 5] == pytest.approx((128 / 255 - CLIP_MEAN[1]) / CLIP_STD[1], abs=1e-6)
    assert x[0, 2, 5, 5] == pytest.approx((1.0 - CLIP_MEAN[2]) / CLIP_STD[2], abs=1e-6)


def test_batch_and_round_trip(rng):
    crops = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    x = to_network_input(crops)
    assert x.shape == (3, 3, 224, 224)
    assert np.array_equal(from_network_input(x), crops)


@pytest.mark.parametrize("bad", [np.zeros((224, 224), np.uint8), np.zeros((200, 224, 3), np.uint8),
                                 np.zeros((224, 224, 3), np.float32)])
def test_wrong_crops_are_refused(bad):
    with pytest.raises(ValueError, match="RGB crops: expected"):
        to_network_input(bad)
