"""Query colour augmentation: uint8 in, uint8 out, same shape, reproducible from the seed."""
import numpy as np
import pytest

from novel_pose_ros.training.augment import OPERATIONS, AugmentSettings, augment_rgb


@pytest.fixture
def crop():
    rng = np.random.default_rng(0)
    image = np.zeros((224, 224, 3), np.uint8)
    image[40:180, 60:170] = rng.integers(0, 256, size=3)
    return np.clip(image.astype(np.int32) + rng.integers(-20, 20, size=image.shape), 0, 255).astype(np.uint8)


def test_augmentation_keeps_shape_dtype_and_is_seeded(crop):
    outputs = [augment_rgb(crop, np.random.default_rng(seed)) for seed in (1, 1, 2)]
    for out in outputs:
        assert out.shape == crop.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])
    assert not np.shares_memory(outputs[0], crop)


def test_probability_zero_is_identity_and_every_operation_runs(crop):
    np.testing.assert_array_equal(augment_rgb(crop, np.random.default_rng(3), AugmentSettings(probability=0.0)), crop)
    always = AugmentSettings(probability=1.0, op_probability=1.0)
    changed = augment_rgb(crop, np.random.default_rng(4), always)
    assert changed.dtype == np.uint8 and np.abs(changed.astype(int) - crop).mean() > 1.0
    rng = np.random.default_rng(5)
    for name, operation in OPERATIONS.items():
        out = operation(crop.astype(np.float32), rng, always)
        assert out.shape == crop.shape, name


def test_augmentation_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        augment_rgb(np.zeros((8, 8, 3), np.float32), np.random.default_rng(0))
