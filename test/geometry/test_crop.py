import cv2
import numpy as np
import pytest

from novel_pose_ros.geometry.crop import (
    SquareBox,
    box_from_mask,
    crop_transform,
    invert_affine,
    square_box_around,
    transform_pixels,
    warp_crop,
)


def test_box_from_mask():
    mask = np.zeros((50, 60), bool)
    mask[10:20, 5:35] = True
    assert box_from_mask(mask) == (5, 10, 30, 10)
    assert box_from_mask(np.zeros((5, 5), bool)) is None


def test_square_box_is_centred_and_shifted_inside():
    assert square_box_around((100, 100, 40, 20), 640, 480) == SquareBox(100, 90, 40)
    # near the right/bottom border the square is shifted inside, not padded
    box = square_box_around((620, 470, 20, 10), 640, 480)
    assert box.x1 + box.side <= 640 and box.y1 + box.side <= 480 and box.side == 20
    # larger than the image's short side: shrunk to fit
    assert square_box_around((0, 0, 600, 500), 640, 480).side == 480


@pytest.mark.parametrize("box", [(10, 10, 0, 5), (700, 10, 5, 5), (-50, -50, 10, 10), (np.nan, 0, 5, 5)])
def test_square_box_rejects_bad_boxes(box):
    with pytest.raises(ValueError, match="box"):
        square_box_around(box, 640, 480)


def test_crop_matches_crop_then_resize(rng):
    """Our crop is pixel-identical to PicoPose's image[y1:y1+s, x1:x1+s] + cv2.resize."""
    image = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    box = SquareBox(x1=30, y1=20, side=90)
    reference = cv2.resize(image[20:110, 30:120], (64, 64), interpolation=cv2.INTER_LINEAR)
    ours = warp_crop(image, crop_transform(box, 64), 64)
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1


def test_crop_transform_maps_points_consistently():
    box = SquareBox(x1=100, y1=50, side=200)
    M = crop_transform(box, 224)
    # the crop's pixel-centre grid spans the box: first and last crop pixels map to
    # the box interior with the half-pixel rule
    corners_crop = np.array([[-0.5, -0.5], [223.5, 223.5]])
    corners_img = transform_pixels(invert_affine(M), corners_crop)
    np.testing.assert_allclose(corners_img, [[99.5, 49.5], [299.5, 249.5]], atol=1e-9)
    uv = np.array([[120.0, 60.0], [250.3, 170.7]])
    np.testing.assert_allclose(transform_pixels(invert_affine(M), transform_pixels(M, uv)), uv, atol=1e-9)


def test_warp_crop_of_mask_stays_boolean():
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    out = warp_crop(mask, crop_transform(SquareBox(30, 30, 40), 80), 80, nearest=True)
    assert out.dtype == bool and out[40, 40] and not out[2, 2]
