"""`rosdep install` gives a robot everything the package imports: every top-level third-party import of
novel_pose_ros/**/*.py and launch/*.py (standard library excluded, via sys.stdlib_module_names) is mapped in
import_dependencies.yaml to a rosdep key that package.xml declares, or to a pip name that package.xml's
comment, docs/ON_A_ROBOT.md's pip list and requirements.txt carry, or is an optional import that is guarded.
"""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT

MAPPING_FILE = Path(__file__).with_name("import_dependencies.yaml")
PACKAGE_XML = REPO_ROOT / "package.xml"
ROBOT_DOC = REPO_ROOT / "docs" / "ON_A_ROBOT.md"
OWN_PACKAGE = "novel_pose_ros"


def source_files(root: Path = REPO_ROOT) -> list[Path]:
    return sorted((root / OWN_PACKAGE).rglob("*.py")) + sorted((root / "launch").glob("*.py"))


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """(top-level module, node) of each absolute import, and of importlib.import_module("name") calls."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value.split(".")[0], node))
    return found


def third_party_imports(files: list[Path]) -> dict[str, set[str]]:
    """module -> files importing it, without the standard library and this package."""
    modules: dict[str, set[str]] = {}
    for path in files:
        for module, _ in imported_modules(ast.parse(path.read_text(), str(path))):
            if module not in sys.stdlib_module_names and module != OWN_PACKAGE:
                modules.setdefault(module, set()).add(path.name)
    return modules


def uncovered(imports: dict[str, set[str]], mapping: dict) -> dict[str, set[str]]:
    return {module: files for module, files in imports.items() if module not in mapping["imports"]}


def mapping() -> dict:
    return yaml.safe_load(MAPPING_FILE.read_text())


def entries(kind: str) -> dict[str, str]:
    """import name -> value of every `kind` (rosdep | pip | optional) entry, imported or not."""
    content = mapping()
    return {name: spec[kind] for section in ("imports", "not_imported") for name, spec in content[section].items()
            if kind in spec}


def declared_keys() -> set[str]:
    root = ElementTree.parse(PACKAGE_XML).getroot()
    return {e.text.strip() for tag in ("exec_depend", "depend") for e in root.findall(tag)}


def test_every_third_party_import_is_covered():
    missing = uncovered(third_party_imports(source_files()), mapping())
    assert not missing, ("imports without an entry in test/ros/import_dependencies.yaml (add the rosdep key to "
                         f"package.xml, or the pip name to package.xml's comment and docs/ON_A_ROBOT.md): {missing}")


def test_every_mapped_import_is_still_imported():
    stale = set(mapping()["imports"]) - set(third_party_imports(source_files()))
    assert not stale, f"import_dependencies.yaml lists modules nothing imports any more (move or drop them): {stale}"


def test_the_check_fails_on_an_import_that_is_not_covered(tmp_path):
    """The check itself: a new third-party import is reported; stdlib, relative and own imports are not."""
    package = tmp_path / OWN_PACKAGE
    package.mkdir()
    (package / "new_module.py").write_text("import json\nimport numpy as np\nfrom . import sibling\n"
                                           "from novel_pose_ros.types import Frame\nimport shiny_new_dependency.sub\n"
                                           "def f():\n    import importlib\n    importlib.import_module('lazy_one')\n")
    (tmp_path / "launch").mkdir()
    found = third_party_imports(source_files(tmp_path))
    assert set(found) == {"numpy", "shiny_new_dependency", "lazy_one"}
    assert set(uncovered(found, mapping())) == {"shiny_new_dependency", "lazy_one"}


def test_package_xml_is_valid_and_declares_exactly_the_mapped_rosdep_keys():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg (what rosdep and colcon read package.xml with)")
    package = catkin_pkg.parse_package(str(PACKAGE_XML))  # raises on an invalid package.xml
    package.validate()
    assert package.get_build_type() == "ament_python"
    wanted, declared = set(entries("rosdep").values()), declared_keys()
    assert not wanted - declared, f"rosdep keys missing from package.xml: {sorted(wanted - declared)}"
    assert not declared - wanted, f"package.xml keys that import_dependencies.yaml does not explain: {sorted(declared - wanted)}"


def test_pip_only_dependencies_are_documented_and_pinned():
    """No rosdep key: package.xml's comment names them, docs/ON_A_ROBOT.md's pip list gives them at the
    version requirements.txt pins (so a robot runs what CI tested)."""
    xml_text, doc = PACKAGE_XML.read_text(), ROBOT_DOC.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO_ROOT / "requirements.txt").read_text(), re.M))
    for name in entries("pip").values():
        assert re.search(rf"pip: {re.escape(name)}\b", xml_text), f"package.xml: no 'pip: {name}' comment"
        assert name in pins, f"requirements.txt does not pin {name}"
        assert f"{name}=={pins[name]}" in doc, f"{ROBOT_DOC.name}: the pip list lacks {name}=={pins[name]}"


def test_optional_imports_are_guarded():
    """An optional module is imported inside a function or a try block, never at a module's top level."""
    optional = set(entries("optional"))
    for path in source_files():
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for module, _ in imported_modules(ast.Module(body=top_level, type_ignores=[])):
            assert module not in optional, f"{path.relative_to(REPO_ROOT)}: optional {module} imported at top level"
