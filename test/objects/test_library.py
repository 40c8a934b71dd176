import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS, MESHES, shared_data
from novel_pose_ros.objects import ObjectLibrary


def test_bundled_library_loads_with_names_and_ids():
    library = ObjectLibrary.from_yaml(BUNDLED_OBJECTS)
    assert library.names == ["mug", "toy_block", "cereal_box", "bracket"]
    assert library.get("mug").id == 1
    assert library.get(2).name == "toy_block"
    assert library.get("3").name == "cereal_box"  # a ROS class_id may carry the id as text
    assert library.find("banana") is None
    with pytest.raises(KeyError, match="unknown object 'banana'.*mug"):
        library.get("banana")
    bracket = library.get("bracket")
    assert bracket.mesh_scale_to_m == 0.001
    np.testing.assert_allclose(bracket.origin_offset_m, [0, 0, 0.025], atol=1e-9)


def _yaml(tmp_path, body):
    path = tmp_path / "objects.yaml"
    path.write_text(body.replace("MESHES", str(MESHES)))
    return path


def test_duplicate_names_and_ids_are_rejected(tmp_path):
    body = ("objects:\n  - {id: 1, name: a, mesh: MESHES/toy_block.ply, units: m}\n"
            "  - {id: 1, name: b, mesh: MESHES/toy_block.ply, units: m}\n")
    with pytest.raises(ValueError, match="id 1 is used twice"):
        ObjectLibrary.from_yaml(_yaml(tmp_path, body))


@pytest.mark.parametrize("entry,message", [
    ("{id: 1, name: a, mesh: MESHES/toy_block.ply, colour: red}", "unknown keys"),
    ("{id: 1, mesh: MESHES/toy_block.ply}", "missing keys"),
    ("{id: one, name: a, mesh: MESHES/toy_block.ply}", "id must be an integer"),
    ("{id: 1, name: 'my block', mesh: MESHES/toy_block.ply}", "must start with a letter"),
    ("{id: 1, name: a, mesh: MESHES/toy_block.ply, symmetries: models_info}", "no entry for id 1"),
    ("{id: 1, name: a, mesh: MESHES/nope.ply}", "nope.ply: file not found"),
])
def test_bad_entries_name_the_file_and_object(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        ObjectLibrary.from_yaml(_yaml(tmp_path, f"objects:\n  - {entry}\n"))


def test_missing_objects_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ObjectLibrary.from_yaml(tmp_path / "none.yaml")


def test_yaml_symmetries(tmp_path):
    body = ("objects:\n  - id: 7\n    name: can\n    mesh: MESHES/toy_block.ply\n    units: m\n"
            "    symmetries: {continuous: [{axis: [0, 0, 1], offset: [0, 0, 0]}]}\n")
    obj = ObjectLibrary.from_yaml(_yaml(tmp_path, body)).get("can")
    np.testing.assert_allclose(obj.symmetries.continuous_axes, [[0, 0, 1]])
    assert obj.symmetries.is_symmetric


@pytest.mark.needs_data
def test_symmetries_from_bop_models_info():
    library = ObjectLibrary.from_bop_models(shared_data("bop_metric_oracle/models"))
    assert len(library) == 8
    eggbox, glue, ape = library.get(10), library.get(11), library.get(1)
    assert eggbox.symmetries.discrete.shape == (1, 4, 4) and glue.symmetries.discrete.shape == (1, 4, 4)
    assert not ape.symmetries.is_symmetric
    # models_info translations are in mm: converted to metres (eggbox: 0.2326 mm -> 2.3e-4 m)
    assert abs(eggbox.symmetries.discrete[0][0, 3] - 0.000232611) < 1e-9


@pytest.mark.needs_data
def test_yaml_models_info_reference(tmp_path):
    models = shared_data("bop_metric_oracle/models")
    path = tmp_path / "objects.yaml"
    path.write_text(f"models_info: {models}/models_info.json\nobjects:\n"
                    f"  - {{id: 11, name: glue, mesh: {models}/obj_000011.ply, units: mm, symmetries: models_info}}\n")
    assert ObjectLibrary.from_yaml(path).get("glue").symmetries.discrete.shape == (1, 4, 4)


@pytest.mark.parametrize("mesh, declared, suggested", [("bracket.stl", "m", "mm"), ("toy_block.ply", "mm", "m")])
def test_a_declared_unit_that_gives_an_implausible_size_is_refused(tmp_path, mesh, declared, suggested):
    """Issue 21 (6): a mesh in mm declared `units: m` would be posed 1000x too far away; the error gives the
    measured size and the unit that makes it plausible."""
    path = _yaml(tmp_path, f"objects:\n  - {{id: 1, name: part, mesh: MESHES/{mesh}, units: {declared}}}\n")
    with pytest.raises(ValueError, match=rf"with units: {declared} the object is .* m across.*set units: {suggested}"):
        ObjectLibrary.from_yaml(path)
    fixed = _yaml(tmp_path, f"objects:\n  - {{id: 1, name: part, mesh: MESHES/{mesh}, units: {suggested}}}\n")
    assert 0.005 < ObjectLibrary.from_yaml(fixed).get("part").diameter_m < 3.0
