"""The training pack (training/pack.py): a compact copy of a training-mesh folder that the trainer reads unchanged.

The source is a tiny fetch-meshes folder made here: the repository's mug (21504 faces, a real scan-like
mesh) as a geometry-only object, a 12-face box, a textured card with a 600 × 400 texture, two
photographs and a licence. No network, no user cache.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import trimesh
from PIL import Image

from helpers import MESHES
from novel_pose_ros.cli import main
from novel_pose_ros.objects.mesh_loading import max_pairwise_distance
from novel_pose_ros.training.meshes import MeshEntry, load_manifest, write_manifest
from novel_pose_ros.training.objects import ObjectPool
from novel_pose_ros.training.pack import PackSettings, build_pack, pack_info, tree_bytes, write_compact_ply
from novel_pose_ros.training.photos import MIN_PHOTO_SIDE_PX, PhotoBank, photos_dir


def _entry(root, name, object_id, split, mesh_path, mesh, textured):
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    return MeshEntry(name=name, object_id=object_id, source="fake", member=f"fake/{name}", split=split,
                     licence="MIT", mesh=str(mesh_path.relative_to(root)), units="m", scale_to_m=(1.0, 1.0, 1.0),
                     offset_m=(0.0, 0.0, 0.0), textured=textured, faces=int(len(mesh.faces)),
                     extents_m=tuple(float(e) for e in mesh.extents), diameter_m=max_pairwise_distance(vertices))


def _textured_card() -> trimesh.Trimesh:
    vertices = np.array([[-0.04, -0.03, 0.0], [0.04, -0.03, 0.0], [0.04, 0.03, 0.0], [-0.04, 0.03, 0.0],
                         [-0.04, -0.03, 0.01], [0.04, -0.03, 0.01], [0.04, 0.03, 0.01], [-0.04, 0.03, 0.01]])
    faces = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5],
                      [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]] * 2, dtype=np.float64)
    gradient = np.dstack([*np.meshgrid(np.linspace(0, 255, 600), np.linspace(0, 255, 400)), np.full((400, 600), 90.0)])
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(gradient.astype(np.uint8)))
    return trimesh.Trimesh(vertices, faces, visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
                           process=False)


@pytest.fixture
def source(tmp_path):
    """A fetch-meshes layout: manifest.json, licences/, meshes/<name>/, photos/ with its manifest."""
    root = tmp_path / "training_meshes"
    (root / "licences").mkdir(parents=True)
    (root / "licences" / "fake.txt").write_text("MIT licence text\n")
    entries = []
    mug = trimesh.load(str(MESHES / "mug.ply"), force="mesh", process=False)
    box = trimesh.creation.box((0.05, 0.03, 0.02))
    card = _textured_card()
    objects = (("fake_mug", 1, "train", mug, "ply"), ("fake_box", 2, "validation", box, "ply"),
               ("fake_card", 3, "train", card, "obj"))
    for name, object_id, split, mesh, suffix in objects:
        folder = root / "meshes" / name
        folder.mkdir(parents=True)
        path = folder / f"{name}.{suffix}"
        mesh.export(str(path))
        entries.append(_entry(root, name, object_id, split, path, mesh, textured=suffix == "obj"))
    write_manifest(root, entries, {"fake": {"licence": "MIT", "licence_file": "licences/fake.txt"}},
                   [{"source": "fake", "member": "fake/duck", "reason": "a test object"}])
    photos = photos_dir(root)
    photos.mkdir()
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8), (0, 0), 3)
    cv2.imwrite(str(photos / "wheel__large.png"), smooth)
    cv2.imwrite(str(photos / "wheel__panorama.png"), cv2.resize(smooth, (900, 200)))
    (photos / "manifest.json").write_text(json.dumps([
        {"file": "wheel__large.png", "wheel": "wheel==1.0", "member": "w/large.png", "licence": "CC0"},
        {"file": "wheel__panorama.png", "wheel": "wheel==1.0", "member": "w/panorama.png", "licence": "CC0"}]))
    return root


SETTINGS = PackSettings(max_faces=500, photo_px=256, texture_px=128, jpeg_quality=80)


def test_pack_keeps_the_objects_and_decimates_the_large_mesh(source, tmp_path):
    before = load_manifest(source)
    pack = build_pack(tmp_path / "pack", SETTINGS, source, show_progress=False)
    assert [(e.name, e.object_id, e.split, e.textured) for e in pack.objects] == \
           [(e.name, e.object_id, e.split, e.textured) for e in before.objects]
    assert pack.names("validation") == ["fake_box"]
    mug = pack.entry("fake_mug")
    assert mug.mesh == "meshes/fake_mug.ply"  # flat: no folder per geometry-only object
    loaded = pack.load_object("fake_mug")  # what the trainer does
    assert len(loaded.mesh.faces) == mug.faces <= 500 < before.entry("fake_mug").faces
    # the same object, in the same frame: extents and diameter within a few percent of the source's
    np.testing.assert_allclose(mug.extents_m, before.entry("fake_mug").extents_m, rtol=0.05)
    assert mug.diameter_m == pytest.approx(before.entry("fake_mug").diameter_m, rel=0.03)
    np.testing.assert_allclose(np.asarray(loaded.mesh.vertices).mean(axis=0),
                               np.asarray(before.load_object("fake_mug").mesh.vertices).mean(axis=0), atol=0.01)
    info = pack_info(pack.root)
    assert info["decimated"] == {"fake_mug": 21504} and info["settings"]["max_faces"] == 500
    assert info["faces_after"] == sum(e.faces for e in pack.objects) < info["faces_before"]
    assert pack.excluded == before.excluded and pack.sources == before.sources
    assert (pack.root / "licences" / "fake.txt").read_text() == "MIT licence text\n"
    assert not (tmp_path / ".pack.partial").exists()
    assert tree_bytes(pack.root) < tree_bytes(source)


def test_a_small_mesh_keeps_its_exact_geometry_in_a_smaller_file(source, tmp_path):
    pack = build_pack(tmp_path / "pack", SETTINGS, source, show_progress=False)
    original = load_manifest(source).load_object("fake_box")
    packed = pack.load_object("fake_box")
    np.testing.assert_array_equal(np.asarray(packed.mesh.faces), np.asarray(original.mesh.faces))
    np.testing.assert_array_equal(np.asarray(packed.mesh.vertices, np.float32),
                                  np.asarray(original.mesh.vertices, np.float32))
    assert pack.entry("fake_box").faces == 12 and "fake_box" not in pack_info(pack.root)["decimated"]
    packed_bytes = (pack.root / "meshes" / "fake_box.ply").stat().st_size
    assert packed_bytes < (source / "meshes" / "fake_box" / "fake_box.ply").stat().st_size


def test_textured_mesh_keeps_its_uv_map_with_a_smaller_jpeg_texture(source, tmp_path):
    pack = build_pack(tmp_path / "pack", SETTINGS, source, show_progress=False)
    entry = pack.entry("fake_card")
    folder = (pack.root / entry.mesh).parent
    assert folder.name == "fake_card" and entry.faces == 12
    textures = sorted(folder.glob("*.jpg"))
    assert len(textures) == 1 and not list(folder.glob("*.png"))
    assert max(cv2.imread(str(textures[0])).shape[:2]) == 128
    assert any(line.split()[-1] == textures[0].name for mtl in folder.glob("*.mtl")
               for line in mtl.read_text().splitlines() if line.startswith("map_Kd"))
    card = pack.load_object("fake_card")
    image = card.mesh.visual.material.image
    assert card.mesh.visual.uv is not None and max(image.size) == 128
    assert pack_info(pack.root)["textures_resized"] == 1


def test_photos_become_jpegs_of_at_most_photo_px_that_the_photo_bank_reads(source, tmp_path):
    pack = build_pack(tmp_path / "pack", SETTINGS, source, show_progress=False)
    photos = photos_dir(pack.root)
    sizes = {p.name: cv2.imread(str(p)).shape[:2] for p in photos.glob("*.jpg")}
    assert sizes["wheel__large.jpg"] == (192, 256)
    # the panorama's shorter side stops at PhotoBank's minimum (smaller photographs are skipped there)
    assert sizes["wheel__panorama.jpg"][0] == MIN_PHOTO_SIDE_PX and sizes["wheel__panorama.jpg"][1] == 576
    entries = {e["file"]: e for e in json.loads((photos / "manifest.json").read_text())}
    assert entries["wheel__large.jpg"]["licence"] == "CC0"
    assert entries["wheel__large.jpg"]["packed_from"] == "wheel__large.png"
    assert len(PhotoBank(photos)) == 2
    assert pack_info(pack.root)["photos"] == 2 and pack_info(pack.root)["photos_resized"] == 2


def test_the_pack_draws_like_the_source_and_refuses_to_overwrite(source, tmp_path):
    out = tmp_path / "pack"
    pack = build_pack(out, SETTINGS, source, show_progress=False)
    pool = ObjectPool.from_manifest(pack, "train")
    assert sorted(pool.names) == ["fake_card", "fake_mug"] and pool.get(0).name in pool.names
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_pack(out, SETTINGS, source, show_progress=False)
    again = build_pack(out, PackSettings(max_faces=200, photo_px=256), source, overwrite=True, show_progress=False)
    assert again.entry("fake_mug").faces <= 200
    with pytest.raises(ValueError, match="inside it"):
        build_pack(source / "pack", SETTINGS, source, show_progress=False)


def test_cli_pack_prints_the_size_and_what_was_reduced(source, tmp_path, capsys):
    out = tmp_path / "cli_pack"
    assert main(["train", "pack", "--out", str(out), "--source", str(source), "--max-faces", "300",
                 "--photo-px", "200", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "1 meshes decimated to ≤ 300" in printed and "3 objects" in printed and "MiB" in printed
    assert load_manifest(out).entry("fake_mug").faces <= 300


def test_settings_are_validated():
    with pytest.raises(ValueError, match="photo_px"):
        PackSettings(photo_px=64)
    with pytest.raises(ValueError, match="max_faces"):
        PackSettings(max_faces=2)
    with pytest.raises(ValueError, match="jpeg_quality"):
        PackSettings(jpeg_quality=0)


def test_compact_ply_round_trips_with_16_and_32_bit_indices(tmp_path):
    rng = np.random.default_rng(1)
    for count in (100, 70000):  # 16-bit indices below 65536 vertices, 32-bit above
        vertices = rng.normal(size=(count, 3)).astype(np.float32)
        faces = rng.integers(0, count, size=(50, 3))
        path = write_compact_ply(tmp_path / f"m{count}.ply", vertices, faces)
        loaded = trimesh.load(str(path), force="mesh", process=False)
        np.testing.assert_array_equal(np.asarray(loaded.vertices, np.float32), vertices)
        np.testing.assert_array_equal(loaded.faces, faces)
        assert (b"ushort" in path.read_bytes()[:300]) == (count < 65536)
    with pytest.raises(ValueError, match="expected vertices"):
        write_compact_ply(tmp_path / "bad.ply", np.zeros((3, 2)), np.zeros((1, 3), int))
