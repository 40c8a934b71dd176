import json
import shutil

import numpy as np
import pytest
import trimesh

from helpers import MESHES, shared_data
from novel_pose_ros.geometry.crop import box_from_mask, warp_crop
from novel_pose_ros.geometry.icosphere import level_subset_indices
from novel_pose_ros.objects import load_object
from novel_pose_ros.templates import TemplateSettings, ensure_templates, load_template_set
from novel_pose_ros.templates.contact_sheet import contact_sheet
from novel_pose_ros.templates.settings import LINEMOD_K


@pytest.fixture(scope="module")
def block():
    return load_object(MESHES / "toy_block.ply", object_id=2, name="toy_block", units="m")


def test_build_writes_every_view_with_consistent_geometry(tmp_path, block, gl_renderer):
    report = ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, show_progress=False)
    assert report.rebuilt and report.view_count == 42 and report.reason == "no templates yet"
    templates = load_template_set(report.folder)
    assert len(templates) == 42 and templates.object_name == "toy_block" and templates.key == report.key
    np.testing.assert_allclose(templates.K, LINEMOD_K)
    distance = 2.0 * np.linalg.norm(block.extents_m)
    np.testing.assert_allclose(templates.T_cam_obj[:, :3, 3], np.tile([0, 0, distance], (42, 1)), atol=1e-9)
    for view in templates.views[::7]:
        fresh = gl_renderer.render([(block, view.T_cam_obj)], templates.K, 640, 480)
        assert np.array_equal(fresh.mask, view.mask)
        assert np.abs(fresh.depth_m - view.depth_m).max() <= 0.05e-3 + 1e-7  # stored at 0.1 mm
        assert np.array_equal(view.depth_m > 0, view.mask)
        assert np.array_equal(fresh.rgb, view.rgb)
        # tight square crop: the mask's longer side spans the whole 224 crop
        crop_mask = warp_crop(view.mask, view.M_crop_img, 224, nearest=True)
        x, y, w, h = box_from_mask(crop_mask)
        assert max(w, h) >= 222 and x >= 0 and y >= 0


def test_rebuild_is_skipped_when_nothing_changed(tmp_path, block, gl_renderer):
    first = ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, show_progress=False)
    manifest_mtime = (first.folder / "manifest.json").stat().st_mtime_ns
    second = ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, show_progress=False)
    assert not second.rebuilt and second.reason == "up to date" and second.key == first.key
    assert (first.folder / "manifest.json").stat().st_mtime_ns == manifest_mtime
    forced = ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, force=True, show_progress=False)
    assert forced.rebuilt and forced.reason == "forced"


def test_rebuild_is_forced_when_the_mesh_changes(tmp_path, gl_renderer):
    mesh_path = tmp_path / "part.ply"
    box = trimesh.creation.box(extents=[0.1, 0.05, 0.03])
    box.apply_translation([0.02, 0.0, 0.0])
    box.export(mesh_path)
    cache = tmp_path / "cache"
    first = ensure_templates(load_object(mesh_path, 1, units="m"), cache, TemplateSettings(), gl_renderer, show_progress=False)
    box.apply_scale(1.2)
    box.export(mesh_path)
    second = ensure_templates(load_object(mesh_path, 1, units="m"), cache, TemplateSettings(), gl_renderer, show_progress=False)
    assert second.rebuilt and "changed" in second.reason and second.key != first.key
    # the origin policy is part of the key as well
    third = ensure_templates(load_object(mesh_path, 1, units="m", origin="center_bbox"), cache, TemplateSettings(), gl_renderer, show_progress=False)
    assert third.rebuilt and third.key != second.key


def test_rebuild_when_settings_change_or_files_are_missing(tmp_path, block, gl_renderer):
    first = ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, show_progress=False)
    (first.folder / "rgb" / "000005.png").unlink()
    repaired = ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, show_progress=False)
    assert repaired.rebuilt and "missing" in repaired.reason
    (first.folder / "manifest.json").unlink()  # as after an interrupted build
    assert ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, show_progress=False).reason == "no templates yet"
    finer = ensure_templates(block, tmp_path, TemplateSettings(level=1), gl_renderer, show_progress=False)
    assert finer.rebuilt and "changed" in finer.reason and finer.view_count == 162


def test_level_zero_templates_are_a_subset_of_level_one(tmp_path, block, gl_renderer):
    coarse = load_template_set(ensure_templates(block, tmp_path / "l0", TemplateSettings(level=0), gl_renderer, show_progress=False).folder)
    fine = load_template_set(ensure_templates(block, tmp_path / "l1", TemplateSettings(level=1), gl_renderer, show_progress=False).folder)
    mapping = level_subset_indices(0, 1)
    np.testing.assert_allclose(fine.T_cam_obj[mapping], coarse.T_cam_obj, atol=1e-12)
    for i in (0, 17, 41):
        assert np.array_equal(fine.views[mapping[i]].rgb, coarse.views[i].rgb)


def test_missing_template_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="build templates first"):
        load_template_set(tmp_path / "nothing")


def test_contact_sheet_has_a_tile_per_view(tmp_path, block, gl_renderer):
    templates = load_template_set(ensure_templates(block, tmp_path, TemplateSettings(), gl_renderer, show_progress=False).folder)
    sheet = contact_sheet(templates, thumb_px=64, columns=7)
    assert sheet.shape == (28 + 6 * 64, 7 * 64, 3) and sheet.dtype == np.uint8


@pytest.mark.needs_data
def test_templates_of_a_real_ycbv_mesh(tmp_path, gl_renderer):
    models = shared_data("ycbv_real/models")
    shutil.copy(models / "obj_000005.ply", tmp_path / "obj_000005.ply")
    obj = load_object(tmp_path / "obj_000005.ply", 5, units="mm")
    report = ensure_templates(obj, tmp_path / "cache", TemplateSettings(), gl_renderer, show_progress=False)
    templates = load_template_set(report.folder)
    manifest = json.loads((report.folder / "manifest.json").read_text())
    assert len(templates) == 42 and manifest["lighting"]["headlight"] > 0  # geometry-only mesh: shaded
    for view in templates.views:
        assert 5_000 < view.mask.sum() < 640 * 480 // 2
        depths = view.depth_m[view.mask]
        distance = 2 * np.linalg.norm(obj.extents_m)
        radius = np.linalg.norm(obj.mesh.vertices, axis=1).max()  # about the origin, which is not the centre
        assert np.all(np.abs(depths - distance) <= radius + 1e-3)
        assert view.rgb[view.mask].std() > 3  # shading, not a flat silhouette
