import json
import logging

import numpy as np
import pytest
import trimesh

from helpers import MESHES, shared_data
from novel_pose_ros.objects import MeshError, load_object
from novel_pose_ros.objects.mesh_loading import max_pairwise_distance


def _write_box(path, scale=1.0):
    trimesh.creation.box(extents=np.array([0.1, 0.05, 0.02]) * scale).export(path)
    return path


@pytest.mark.parametrize("filename,kind", [("mug.ply", "vertex"), ("toy_block.ply", "face"), ("cereal_box.obj", "texture"), ("bracket.stl", None)])
def test_loads_each_format_with_its_appearance(filename, kind):
    obj = load_object(MESHES / filename, object_id=1, units="mm" if filename.endswith(".stl") else "m")
    assert obj.mesh.visual.kind == kind
    assert obj.has_appearance == (kind is not None)
    assert 0.05 < obj.diameter_m < 0.2
    assert len(obj.content_hash) == 64


def test_texture_image_is_kept():
    obj = load_object(MESHES / "cereal_box.obj", object_id=3, units="m")
    assert np.asarray(obj.mesh.visual.material.image).shape[:2] == (384, 512)


def test_auto_units_reads_large_meshes_as_mm_with_warning(tmp_path, caplog):
    path = _write_box(tmp_path / "box_mm.ply", scale=1000.0)
    with caplog.at_level(logging.WARNING):
        obj = load_object(path, object_id=1, units="auto")
    assert obj.mesh_scale_to_m == 0.001
    np.testing.assert_allclose(obj.extents_m, [0.1, 0.05, 0.02], atol=1e-9)
    assert any("millimetres" in r.message for r in caplog.records)


def test_auto_units_keeps_metre_meshes(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        obj = load_object(_write_box(tmp_path / "box_m.ply"), object_id=1, units="auto")
    assert obj.mesh_scale_to_m == 1.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_explicit_units_override_auto(tmp_path):
    obj = load_object(_write_box(tmp_path / "b.ply", scale=1000.0), object_id=1, units="m")
    assert obj.mesh_scale_to_m == 1.0 and obj.diameter_m > 100


def test_center_bbox_moves_origin_and_symmetries(tmp_path):
    box = trimesh.creation.box(extents=[0.1, 0.05, 0.02])
    box.apply_translation([0.2, 0.0, 0.0])
    path = tmp_path / "offset_box.ply"
    box.export(path)
    # a 180° turn about the z axis through the box centre (0.2, 0, 0), in file units (m)
    S = np.diag([-1.0, -1.0, 1.0, 1.0])
    S[0, 3] = 0.4
    sym = {"discrete": [S.ravel().tolist()], "continuous": [{"axis": [1, 0, 0], "offset": [0.2, 0.0, 0.0]}]}
    obj = load_object(path, object_id=1, units="m", origin="center_bbox", symmetries=sym)
    # PLY stores float32 vertices: agreement to ~1e-8 m
    np.testing.assert_allclose(obj.origin_offset_m, [0.2, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(obj.mesh.bounds.mean(axis=0), 0.0, atol=1e-12)
    # in the centred frame the symmetry is a pure rotation and the axis passes through the origin
    np.testing.assert_allclose(obj.symmetries.discrete[0][:3, 3], 0.0, atol=1e-7)
    np.testing.assert_allclose(obj.symmetries.continuous_offsets_m[0], 0.0, atol=1e-7)
    # and it still maps the mesh onto itself
    v = np.asarray(obj.mesh.vertices)
    mapped = v @ obj.symmetries.discrete[0][:3, :3].T + obj.symmetries.discrete[0][:3, 3]
    assert np.abs(np.sort(mapped, axis=0) - np.sort(v, axis=0)).max() < 1e-7


def test_symmetry_translations_are_converted_from_mm(tmp_path):
    S = np.diag([-1.0, -1.0, 1.0, 1.0])
    S[:3, 3] = [10.0, 0.0, 0.0]
    obj = load_object(_write_box(tmp_path / "b.ply", scale=1000.0), object_id=1, units="mm",
                      symmetries={"discrete": [S.ravel().tolist()]})
    np.testing.assert_allclose(obj.symmetries.discrete[0][:3, 3], [0.01, 0.0, 0.0])


def test_diameter_is_exact_max_pairwise_distance(rng):
    points = rng.normal(size=(500, 3))
    brute = np.max(np.linalg.norm(points[:, None] - points[None], axis=-1))
    assert np.isclose(max_pairwise_distance(points), brute)


@pytest.mark.needs_data
def test_diameters_match_bop_models_info():
    models = shared_data("bop_metric_oracle/models")
    info = json.loads((models / "models_info.json").read_text())
    for obj_id in (1, 5, 10):
        obj = load_object(models / f"obj_{obj_id:06d}.ply", object_id=obj_id, units="mm")
        assert abs(obj.diameter_m * 1000 - info[str(obj_id)]["diameter"]) < 1e-2


# --- bad meshes: one clear error naming the file -------------------------------------------

def _points_only_ply(path):
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                    "end_header\n0 0 0\n1 0 0\n0 1 0\n")
    return path


def _nan_obj(path):
    path.write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    return path


def _zero_extent_obj(path):
    path.write_text("v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n")
    return path


def _corrupt_ply(path):
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nproperty float x\nend_header\n\x00\x01")
    return path


@pytest.mark.parametrize("make,reason", [
    (lambda p: p / "missing.ply", "file not found"),
    (lambda p: _points_only_ply(p / "points.ply"), "no faces|does not contain a triangle mesh"),
    (lambda p: _nan_obj(p / "nan.obj"), "non-finite"),
    (lambda p: _zero_extent_obj(p / "flat.obj"), "zero extent"),
    (lambda p: _corrupt_ply(p / "corrupt.ply"), "cannot be parsed|no faces|does not contain"),
    (lambda p: (p / "model.dae").write_text("<xml/>") and p / "model.dae", "unsupported format"),
])
def test_bad_meshes_raise_one_clear_error_naming_the_file(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(MeshError, match=reason) as info:
        load_object(path, object_id=1, units="m")
    assert str(path.name) in str(info.value)


def test_bad_units_and_origin_are_rejected(tmp_path):
    path = _write_box(tmp_path / "b.ply")
    with pytest.raises(MeshError, match="units"):
        load_object(path, object_id=1, units="cm")
    with pytest.raises(MeshError, match="origin"):
        load_object(path, object_id=1, origin="centroid")
