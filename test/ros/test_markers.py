"""novel_pose_ros.ros.markers: where RViz draws a mesh marker, per-instance ids, DELETE at expiry, URLs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from helpers import BUNDLED_OBJECTS, MESHES
from novel_pose_ros.geometry.se3 import make_T, matrix_from_quaternion, random_rotation, transform_points
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.paths import share_dir
from novel_pose_ros.ros import markers
from novel_pose_ros.types import PoseEstimate

HEADER = Header(stamp=Time(sec=1712, nanosec=345_000_000), frame_id="camera_color_optical_frame")


@pytest.fixture(scope="module")
def library() -> ObjectLibrary:
    return ObjectLibrary.from_yaml(BUNDLED_OBJECTS)


def random_pose(rng, name: str, instance: int = 0, index: int = 0) -> PoseEstimate:
    return PoseEstimate(name, instance, make_T(random_rotation(rng), rng.uniform(-0.2, 0.2, 3) + [0, 0, 0.8]), 0.9, index)


def T_of(pose) -> np.ndarray:
    q = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    return make_T(matrix_from_quaternion(np.array(q)), [pose.position.x, pose.position.y, pose.position.z])


def resolve(url: str) -> Path:
    """What RViz does with a mesh_resource: package://novel_pose_ros/<p> is <its share folder>/<p>."""
    if url.startswith("package://novel_pose_ros/"):
        return share_dir() / url[len("package://novel_pose_ros/"):]
    assert url.startswith("file://"), url
    return Path(url[len("file://"):])


def test_mesh_marker_puts_the_file_points_where_the_model_is(rng, library):
    bracket = library.get("bracket")  # millimetre STL, origin moved to its box centre
    assert bracket.mesh_scale_to_m == 0.001 and np.linalg.norm(bracket.origin_offset_m) > 0
    poses = [random_pose(rng, "bracket", 0), random_pose(rng, "cereal_box", 0, index=1),
             random_pose(rng, "bracket", 1, index=2)]
    msg = markers.marker_array_msg(poses, library, HEADER, lifetime_s=1.5)
    assert all(m.action == Marker.ADD for m in msg.markers)  # no DELETEALL: instances keep their markers
    meshes = [m for m in msg.markers if m.type == Marker.MESH_RESOURCE]
    labels = [m for m in msg.markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(msg.markers) == 6 and len(meshes) == 3 and len(labels) == 3
    assert [(m.ns, m.id) for m in meshes] == [("bracket", 0), ("cereal_box", 0), ("bracket", 1)]
    assert [(m.ns, m.id, m.text) for m in labels] == [
        ("bracket/label", 0, "bracket_0"), ("cereal_box/label", 0, "cereal_box_0"), ("bracket/label", 1, "bracket_1")]
    assert all(m.header == HEADER and m.lifetime.sec == 1 and m.lifetime.nanosec == 500_000_000 for m in msg.markers)
    marker = meshes[0]
    # a bundled mesh: a package URL, which RViz on another machine with the package resolves
    assert marker.mesh_resource == "package://novel_pose_ros/meshes/bracket.stl"
    assert resolve(marker.mesh_resource).resolve() == (MESHES / "bracket.stl").resolve()
    assert marker.mesh_use_embedded_materials
    assert (marker.scale.x, marker.scale.y, marker.scale.z) == (0.001, 0.001, 0.001)
    assert marker.color.a == 1.0  # plain STL: coloured; the textured cereal box keeps its materials
    assert (meshes[1].color.r, meshes[1].color.a) == (0.0, 0.0)
    # What RViz does: load the file in its own units and origin, scale, then apply the marker pose.
    file_points = trimesh.load(resolve(marker.mesh_resource), force="mesh", process=False).vertices
    in_rviz = transform_points(T_of(marker.pose), file_points * marker.scale.x)
    expected = transform_points(poses[0].T_cam_obj, bracket.mesh.vertices)
    np.testing.assert_allclose(in_rviz, expected, atol=1e-9)
    # labels sit above (image up = -y) their object
    assert labels[0].pose.position.y < poses[0].t_m[1]


def test_marker_ids_are_stable_across_frames(rng, library):
    first = markers.marker_array_msg([random_pose(rng, "mug", 0)], library, HEADER, 0.0)
    second = markers.marker_array_msg([random_pose(rng, "mug", 0)], library, HEADER, 0.0)
    assert [(m.ns, m.id, m.type) for m in first.markers] == [(m.ns, m.id, m.type) for m in second.markers]
    assert first.markers[0].color == second.markers[0].color
    assert first.markers[0].lifetime.sec == 0 and first.markers[0].lifetime.nanosec == 0  # forever


def test_expired_instances_get_their_mesh_and_label_deleted_first(rng, library):
    msg = markers.marker_array_msg([random_pose(rng, "mug", 0)], library, HEADER, 1.0, expired=[("mug", 0), ("bracket", 2)],
                                   prefix="left/")
    deleted = [(m.ns, m.id) for m in msg.markers if m.action == Marker.DELETE]
    assert deleted == [("mug", 0), ("mug/label", 0), ("bracket", 2), ("bracket/label", 2)]
    assert [m.action for m in msg.markers[4:]] == [Marker.ADD, Marker.ADD]  # a re-used id comes back after its DELETE
    assert msg.markers[-1].text == "left/mug_0"


def test_mesh_urls(tmp_path, monkeypatch):
    user_mesh = tmp_path / "elsewhere" / "part.stl"
    assert markers.mesh_resource_url(user_mesh) == "file://" + str(user_mesh.resolve())
    # a mesh inside another ROS package's share folder (an ament prefix with its resource index marker)
    prefix = tmp_path / "install"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "my_parts").touch()
    mesh = prefix / "share" / "my_parts" / "meshes" / "part.stl"
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{tmp_path / 'missing'}:{prefix}")
    assert markers.mesh_resource_url(mesh) == "package://my_parts/meshes/part.stl"
    # our own share folder counts only for what setup.py installs there
    assert markers.mesh_resource_url(share_dir() / "models" / "x.ply") == "package://novel_pose_ros/models/x.ply"
    assert markers.mesh_resource_url(share_dir() / "test" / "x.ply").startswith("file://")
