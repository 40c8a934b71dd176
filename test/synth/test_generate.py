"""The synthetic BOP generator: the dataset loads, its GT re-renders onto its depth, annotations agree, seeds reproduce."""
import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.bop.dataset import BopDataset, bop_box
from novel_pose_ros.bop.detections import read_detections_json
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render.base import texture_image
from novel_pose_ros.synth import SynthSettings, generate_dataset
from novel_pose_ros.synth.backgrounds import TEXTURE_KINDS, procedural_texture
from novel_pose_ros.synth.scene_sampling import StablePoses, sample_camera, sample_intrinsics, sample_layout
from novel_pose_ros.synth.writer import models_info_entry, write_models
from novel_pose_ros.types import Symmetries

SCENES, IMAGES = 2, 5


@pytest.fixture(scope="module")
def library():
    """One UV-textured mesh (cereal_box, id 3) and one geometry-only mm STL (bracket, id 4)."""
    bundled = ObjectLibrary.from_yaml(BUNDLED_OBJECTS)
    return ObjectLibrary([bundled.get("cereal_box"), bundled.get("bracket")])


@pytest.fixture(scope="module")
def generated(tmp_path_factory, library, gl_renderer):
    """Three runs: seed 7, seed 7 again, seed 8."""
    root = tmp_path_factory.mktemp("synth")
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        runs[name] = generate_dataset(library, root / name, SCENES, IMAGES, seed, renderer=gl_renderer, show_progress=False)
    return runs


@pytest.fixture(scope="module")
def dataset(generated):
    return BopDataset(generated["a"].out_dir)


def _png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"missing {path}"
    return image


def _masks(dataset, image, gt_index):
    scene = dataset.split_dir / f"{image.scene_id:06d}"
    name = f"{image.im_id:06d}_{gt_index:06d}.png"
    return _png(scene / "mask" / name) > 0, _png(scene / "mask_visib" / name) > 0


def test_dataset_has_the_bop_layout(generated, dataset):
    summary = generated["a"]
    assert sorted(dataset.scenes) == [0, 1] and all(len(images) == IMAGES for images in dataset.scenes.values())
    assert summary.images == SCENES * IMAGES and summary.instances == sum(len(i.gt) for i in dataset.images())
    assert {p.name for p in dataset.models_dir.iterdir()} == {"models_info.json", "obj_000003.ply", "obj_000003.png", "obj_000004.ply"}
    assert (dataset.root / "test_targets_bop19.json").is_file() and (dataset.root / "detections_gt.json").is_file()
    for image in dataset.images():
        assert image.load_rgb().shape == (480, 640, 3) and image.depth_scale_mm == 0.1
        assert image.load_depth_m().shape == (480, 640)
        assert len(image.gt) >= 1 and {g.obj_id for g in image.gt} <= {3, 4}
        assert all(g.visib_fract is not None for g in image.gt)
        for index in range(len(image.gt)):
            mask, mask_visib = _masks(dataset, image, index)
            assert mask.shape == (480, 640)


def test_gt_rendered_from_the_datasets_own_models_matches_its_depth(dataset, gl_renderer):
    """Done means: GT + models/ re-read through BopDataset reproduce depth (up to uint16 quantisation) and masks."""
    library = dataset.object_library()
    worst_m, object_pixels = 0.0, 0
    for image in dataset.images():
        render = gl_renderer.render([(library.get(g.obj_id), g.T_cam_obj) for g in image.gt], image.K, 640, 480)
        depth = image.load_depth_m()
        on_object = render.labels > 0
        object_pixels += int(on_object.sum())
        worst_m = max(worst_m, float(np.abs(render.depth_m[on_object] - depth[on_object]).max()))
        for index in range(len(image.gt)):
            _, mask_visib = _masks(dataset, image, index)
            np.testing.assert_array_equal(render.labels == index + 1, mask_visib)
    assert object_pixels > 10000
    assert worst_m <= 0.5 * 0.1e-3 + 1e-6  # half of depth_scale 0.1 mm, plus float32 rounding


def test_masks_and_gt_info_agree(dataset):
    fracts = []
    for image in dataset.images():
        masks = [_masks(dataset, image, i) for i in range(len(image.gt))]
        depth_valid = image.load_depth_m() > 0
        for index, (inst, (mask, mask_visib)) in enumerate(zip(image.gt, masks)):
            assert not (mask_visib & ~mask).any(), "mask_visib must lie inside mask"
            assert inst.px_count_all == mask.sum() and inst.px_count_visib == mask_visib.sum()
            assert inst.visib_fract == pytest.approx(mask_visib.sum() / mask.sum() if mask.any() else 0.0)
            info = json.loads((dataset.split_dir / f"{image.scene_id:06d}" / "scene_gt_info.json").read_text())
            assert info[str(image.im_id)][index]["px_count_valid"] == (mask & depth_valid).sum()
            # BOP's box convention: w = x_max − x_min (one less than the pixel count)
            assert inst.bbox_visib == (bop_box(box_from_mask(mask_visib)) if mask_visib.any() else (-1, -1, -1, -1))
            if mask.any():  # the silhouette box contains the in-image part (and may reach beyond the image)
                x, y, w, h = bop_box(box_from_mask(mask))
                bx, by, bw, bh = inst.bbox_obj
                assert bx <= x and by <= y and bx + bw >= x + w and by + bh >= y + h
                fracts.append(inst.visib_fract)
            # the plane never hides an object: what is hidden is covered by other instances
            others = np.zeros_like(mask)
            for other, (_, other_visib) in enumerate(masks):
                if other != index:
                    others |= other_visib
            assert not (mask & ~mask_visib & ~others).any()
    assert any(f < 1.0 for f in fracts), "no instance is occluded"
    assert sum(f < 0.9 for f in fracts) >= 2


def test_models_keep_units_appearance_and_info(dataset, library):
    info = dataset.models_info
    reread = dataset.object_library()
    for obj in library:
        entry = info[str(obj.id)]
        assert entry["diameter"] == pytest.approx(obj.diameter_m * 1000, rel=1e-9)
        assert reread.get(obj.id).diameter_m == pytest.approx(obj.diameter_m, rel=1e-6)  # float32 mm in the PLY
        np.testing.assert_allclose([entry["min_x"], entry["min_y"], entry["min_z"]], obj.mesh.bounds[0] * 1000, atol=1e-9)
        np.testing.assert_allclose([entry["size_x"], entry["size_y"], entry["size_z"]], obj.extents_m * 1000, atol=1e-9)
        np.testing.assert_allclose(reread.get(obj.id).mesh.bounds, obj.mesh.bounds, atol=1e-7)
    textured = trimesh.load(dataset.models_dir / "obj_000003.ply", force="mesh", process=False)
    assert textured.visual.kind == "texture" and textured.visual.material.image is not None
    np.testing.assert_array_equal(texture_image(reread.get(3)), texture_image(library.get(3)))
    assert not reread.get(4).has_appearance


def test_targets_and_gt_detections(dataset):
    expected = []
    for image in dataset.images():
        counts = {}
        for inst in image.gt:
            if inst.visib_fract >= 0.1:
                counts[inst.obj_id] = counts.get(inst.obj_id, 0) + 1
        expected += [(image.scene_id, image.im_id, o, n) for o, n in sorted(counts.items())]
    assert dataset.targets_path is not None
    assert [(t.scene_id, t.im_id, t.obj_id, t.inst_count) for t in dataset.targets] == expected
    detections, problems = read_detections_json(dataset.root / "detections_gt.json")
    assert not problems
    visible = [(image, i, inst) for image in dataset.images() for i, inst in enumerate(image.gt) if inst.px_count_visib]
    assert len(detections) == len(visible)
    for d, (image, index, inst) in zip(detections, visible):
        _, mask_visib = _masks(dataset, image, index)
        assert (d.scene_id, d.im_id, d.obj_id) == (image.scene_id, image.im_id, inst.obj_id)
        np.testing.assert_array_equal(d.mask, mask_visib)
        assert d.bbox_xywh == tuple(float(v) for v in box_from_mask(mask_visib))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_other_seed_other_files(generated):
    a, b, c = (_files(generated[k].out_dir) for k in "abc")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert a["test/000000/scene_gt.json"] != c["test/000000/scene_gt.json"]
    assert a.get("test/000000/rgb/000000.png") != c.get("test/000000/rgb/000000.png")


def test_existing_output_is_refused_unless_overwrite(generated, library, gl_renderer, tmp_path):
    with pytest.raises(ValueError, match="already holds a dataset"):
        generate_dataset(library, generated["a"].out_dir, 1, 1, 0, renderer=gl_renderer, show_progress=False)
    out = tmp_path / "small"
    generate_dataset(library, out, 2, 1, 0, renderer=gl_renderer, show_progress=False)
    (out / "notes.txt").write_text("mine")
    generate_dataset(library, out, 1, 1, 0, renderer=gl_renderer, show_progress=False, overwrite=True)
    assert sorted(p.name for p in (out / "test").iterdir()) == ["000000"]  # the old scene 1 is gone
    assert (out / "notes.txt").read_text() == "mine"


def test_layouts_rest_on_the_plane_without_interpenetration_and_cameras_stay_above(library, rng):
    settings = SynthSettings(in_air_probability=0.3)
    stable = StablePoses()
    objects = [library.get(3), library.get(4)] * 3
    for _ in range(5):
        layout = sample_layout(objects, rng, settings, stable)
        assert len(layout.objects) == len(objects)
        boxes = []
        for placed in layout.objects:
            points = trimesh.transform_points(placed.obj.mesh.vertices, placed.T_world_obj)
            if placed.resting:
                assert points[:, 2].min() == pytest.approx(0.0, abs=1e-9)
            else:
                assert points[:, 2].min() >= settings.in_air_height_m[0] - 1e-9
            assert np.linalg.norm(points - layout.center_world, axis=1).max() <= layout.radius_m + 1e-9
            boxes.append((points.min(axis=0), points.max(axis=0)))
        for i in range(len(boxes)):
            for j in range(i):
                assert np.any(boxes[i][0] >= boxes[j][1]) or np.any(boxes[j][0] >= boxes[i][1])
        K = sample_intrinsics(rng, settings)
        T_cam_world = sample_camera(rng, layout, K, settings)
        camera_world = -T_cam_world[:3, :3].T @ T_cam_world[:3, 3]
        assert camera_world[2] > 0
        center_cam = T_cam_world[:3, :3] @ layout.center_world + T_cam_world[:3, 3]
        assert center_cam[2] > layout.radius_m


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_procedural_textures_tile_and_depend_on_the_seed(kind):
    texture = procedural_texture(np.random.default_rng(3), 64, kind)
    assert texture.shape == (64, 64, 3) and texture.dtype == np.uint8
    np.testing.assert_array_equal(texture, procedural_texture(np.random.default_rng(3), 64, kind))
    assert not np.array_equal(texture, procedural_texture(np.random.default_rng(4), 64, kind))
    # periodic: the jump across the wrap is no larger than the largest jump inside the texture
    inner = np.abs(np.diff(texture.astype(int), axis=1)).max()
    assert np.abs(texture[:, 0].astype(int) - texture[:, -1]).max() <= inner


def test_models_info_symmetries_round_trip_in_millimetres(library, tmp_path):
    symmetries = Symmetries(
        discrete=[make_T(rotation_from_axis_angle(np.array([0.0, 0.0, 1.0]), np.pi), [0.01, 0.0, 0.0])],
        continuous_axes=[[0.0, 0.0, 1.0]], continuous_offsets_m=[[0.001, 0.002, 0.0]],
    )
    obj = dataclasses.replace(library.get(4), symmetries=symmetries)
    entry = models_info_entry(obj)
    assert entry["symmetries_discrete"][0][3] == pytest.approx(10.0)  # mm
    assert entry["symmetries_continuous"][0]["offset"] == pytest.approx([1.0, 2.0, 0.0])
    write_models(ObjectLibrary([obj]), tmp_path)
    reread = ObjectLibrary.from_bop_models(tmp_path).get(4).symmetries
    np.testing.assert_allclose(reread.discrete, symmetries.discrete, atol=1e-12)
    np.testing.assert_allclose(reread.continuous_offsets_m, symmetries.continuous_offsets_m, atol=1e-12)
    assert "symmetries_discrete" not in models_info_entry(library.get(4))
