"""Parameter files, the launch file and the RViz config: they parse, and every name they use exists.

`NODES` maps a node name to the function that declares its parameters on a node; each
config/<node>.yaml is checked against it (this is what catches a misspelt parameter, which a node
would otherwise ignore silently). Where the ROS 2 launch tools are installed, the launch file is also
loaded by `launch` itself; test_launch_graph.py runs it.
"""
from __future__ import annotations

import ast
import py_compile
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from helpers import REPO_ROOT
from novel_pose_ros.ros import bop_player_node, parameters
from ros_tools import missing_ros_tools

LAUNCH_FILE = REPO_ROOT / "launch" / "pose_estimation.launch.py"
RVIZ_FILE = REPO_ROOT / "rviz" / "novel_pose.rviz"
# node name -> (its parameters file, function that declares its parameters on a node)
NODES: dict[str, tuple[Path, Callable[[Any], Any]]] = {
    "bop_player": (REPO_ROOT / "config" / "bop_player.yaml", bop_player_node.declare_parameters),
    "pose_estimator": (REPO_ROOT / "config" / "pose_estimator.yaml", parameters.declare),
}
# Required parameters the file leaves empty, given on the command line in the check.
REQUIRED_OVERRIDES: dict[str, list[str]] = {"bop_player": ["dataset:=/tmp/some_dataset"]}
# Commented-out example settings in a parameters file: "    # name: value"
COMMENTED_SETTING = re.compile(r"^ {4}# ?([a-z][a-z0-9_]*): \S", re.MULTILINE)
# Launch arguments a user relies on (README, docs/ON_A_ROBOT.md), besides the TOPICS table's remaps.
LAUNCH_ARGUMENTS = {"namespace", "frame_prefix", "config", "objects_file", "pipeline", "use_rviz", "use_bop_player", "dataset",
                    "dataset_objects_file", "bop_player_config"}


def parameters_in(path: Path, node_name: str) -> dict[str, Any]:
    """The ros__parameters of `node_name` in a params file, after checking the layout: one key, the node's
    name, or `/**/<name>` (that node in any namespace, so that the launch file's `namespace` keeps it)."""
    content = yaml.safe_load(path.read_text())
    assert isinstance(content, dict) and len(content) == 1 and list(content)[0] in (node_name, f"/**/{node_name}"), \
        f"{path}: expected one top-level key, '{node_name}' or '/**/{node_name}'"
    (key, section), = content.items()
    assert list(section) == ["ros__parameters"], f"{path}: '{key}' must hold only ros__parameters"
    parameters = section["ros__parameters"]
    assert isinstance(parameters, dict) and parameters, f"{path}: no parameters"
    for name, value in parameters.items():
        assert not isinstance(value, dict), f"{path}: {name}: nested parameters are not used by our nodes"
        if isinstance(value, list):  # ROS arrays: non-empty, one element type
            assert value and len({type(v) for v in value}) == 1, f"{path}: {name}: arrays must be non-empty and of one type"
    return parameters


def launch_topics() -> dict[str, str]:
    """The launch file's TOPICS table: input name -> default topic (each one a remap argument)."""
    return next(ast.literal_eval(node.value) for node in ast.walk(ast.parse(LAUNCH_FILE.read_text()))
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TOPICS")


@pytest.mark.parametrize("node_name", sorted(NODES))
def test_parameters_file_parses(node_name):
    path, _ = NODES[node_name]
    parameters_in(path, node_name)


@pytest.mark.ros
@pytest.mark.parametrize("node_name", sorted(NODES))
def test_every_parameter_in_the_file_is_declared(node_name):
    """The node, given the file as ROS does (--params-file), declares every name set (or shown
    commented out) in it, with the file's value and type."""
    import rclpy

    path, declare = NODES[node_name]
    parameters = parameters_in(path, node_name)
    commented = set(COMMENTED_SETTING.findall(path.read_text())) - set(parameters)
    args = ["--ros-args", "--params-file", str(path)]
    for override in REQUIRED_OVERRIDES.get(node_name, []):
        args += ["-p", override]
    context = rclpy.Context()
    rclpy.init(args=args, context=context)
    try:
        node = rclpy.create_node(node_name, context=context)
        declare(node)
        undeclared = sorted(name for name in [*parameters, *commented] if not node.has_parameter(name))
        assert not undeclared, f"{path} sets parameters that {node_name} does not declare: {undeclared}"
        overridden = {o.split(":=")[0] for o in REQUIRED_OVERRIDES.get(node_name, [])}
        for name, value in parameters.items():
            if name not in overridden:
                assert node.get_parameter(name).value == value, f"{name}: the file's value did not reach the node"
        node.destroy_node()
    finally:
        context.try_shutdown()


def test_launch_file_compiles_and_uses_only_declared_arguments(tmp_path):
    py_compile.compile(str(LAUNCH_FILE), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    tree = ast.parse(LAUNCH_FILE.read_text())
    # argument names: DeclareLaunchArgument("x", ...) and those generated from the TOPICS table
    topics = launch_topics()
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    declared = set(topics) | {c.args[0].value for c in calls if c.func.id == "DeclareLaunchArgument"
                              and isinstance(c.args[0], ast.Constant)}
    used = {c.args[0].value for c in calls if c.func.id == "LaunchConfiguration" and isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f"LaunchConfiguration without DeclareLaunchArgument: {sorted(used - declared)}"
    assert {"image", "camera_info", "detections", "detection_masks", "depth"} | LAUNCH_ARGUMENTS <= declared
    # relative default topics: `namespace:=cam1` moves the inputs with the nodes (/cam1/camera/color/image_raw)
    assert not [t for t in topics.values() if t.startswith("/")], f"absolute default topics: {topics}"
    # the share files it points at exist in the source tree
    for call in calls:
        if call.func.id == "PathJoinSubstitution":
            parts = [e.value for e in call.args[0].elts if isinstance(e, ast.Constant)]
            assert (REPO_ROOT.joinpath(*parts)).is_file(), f"launch file refers to missing {'/'.join(parts)}"


@pytest.mark.skipif(missing_ros_tools() is not None, reason=missing_ros_tools() or "")
def test_launch_loads_the_file_and_declares_its_arguments():
    """`launch` itself loads the file (what `ros2 launch` does first) and sees every argument, with the defaults
    that tie the nodes together: no namespace, the bundled objects for both nodes, the picopose pipeline."""
    from launch.actions import DeclareLaunchArgument
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    arguments = {a.name: a for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert set(arguments) == set(launch_topics()) | LAUNCH_ARGUMENTS

    def default(name: str) -> str:
        return " ".join(s.describe() for s in arguments[name].default_value)

    assert default("namespace") == "''" and default("pipeline") == "'picopose'"
    assert "'config' + 'objects.yaml'" in default("objects_file")
    assert default("dataset_objects_file") == "LaunchConfig('objects_file')"
    assert default("pipeline").strip("'") in parameters.SPEC_BY_NAME["pipeline"].choices


def test_launch_needs_are_installed():
    """What the launch file starts by package and executable name, colcon must install: console
    scripts for both nodes, and the folders it and the nodes read in share/ (test_launch_graph.py builds it)."""
    setup = (REPO_ROOT / "setup.py").read_text()
    for executable, target in [("bop_player_node", "novel_pose_ros.ros.bop_player_node:main"),
                               ("pose_estimator_node", "novel_pose_ros.ros.pose_estimator_node:main")]:
        assert re.search(rf'"{executable}\s*=\s*{re.escape(target)}"', setup), \
            f"setup.py: no console script {executable} = {target}"
    for folder in ("config", "launch", "meshes", "models", "rviz"):
        assert f'share_files("{folder}")' in setup, f"setup.py does not install {folder}/"


def test_rviz_config_shows_our_topics_in_the_optical_frame():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "camera_color_optical_frame"
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert set(displays) == {"rviz_default_plugins/Image", "rviz_default_plugins/TF",
                             "rviz_default_plugins/MarkerArray", "rviz_default_plugins/PoseArray"}
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "/pose_estimator/markers"
    assert displays["rviz_default_plugins/PoseArray"]["Topic"]["Value"] == "/object_poses"
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "/pose_estimator/overlay"
    assert all(d["Enabled"] for d in displays.values())
