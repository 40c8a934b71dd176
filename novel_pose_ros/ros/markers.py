"""RViz markers of the estimated instances: a mesh and a label per instance, kept per instance id.

Each instance (instance_tracking.py) owns two markers: namespace <object> (the mesh) and
<object>/label (its TF frame's name), marker id = instance id. A frame re-sends the markers of the
instances it posed (ADD replaces them in place, so RViz does not flicker); an instance that expired
gets a DELETE of both. `marker_lifetime_s` still bounds how long RViz keeps a marker no frame
refreshed (a camera that stops).

Mesh files are referenced by URL: package://<package>/<path> when the mesh lies in a ROS package's
share folder (ours: meshes/, models/, config/; any other package on AMENT_PREFIX_PATH), which RViz
resolves on any machine that has the package; else file://<absolute path>, which only works where
that file exists (PoseOutputs warns at configure).
"""
from __future__ import annotations

import colorsys
import functools
import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from geometry_msgs.msg import Point, Pose, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from novel_pose_ros.geometry.se3 import check_shape
from novel_pose_ros.objects.library import ObjectLibrary
from novel_pose_ros.paths import PACKAGE, share_dir
from novel_pose_ros.ros.conversions import box_centre_obj, duration_msg, instance_frame_id, pose_msg
from novel_pose_ros.types import PoseEstimate

LABEL_HEIGHT_FRACTION = 0.25  # text label height as a fraction of the object diameter
OUR_SHARED_FOLDERS = ("meshes", "models", "config")  # what setup.py installs under share/novel_pose_ros


def object_colour(name: str) -> ColorRGBA:
    """A stable, saturated colour per object name."""
    hue = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=1.0)


def mesh_marker_T(T_cam_obj: np.ndarray, origin_offset_m: np.ndarray) -> np.ndarray:
    """Pose for a marker that draws the mesh file scaled to metres: T_cam_obj · Translation(−origin_offset_m).

    A file point q (file units) is at s·q − origin_offset_m in the object frame (s = mesh_scale_to_m).
    """
    T = check_shape("T_cam_obj", T_cam_obj, (4, 4)).copy()
    T[:3, 3] -= T[:3, :3] @ check_shape("origin_offset_m", np.ravel(origin_offset_m), (3,))
    return T


def _package_shares(ament_prefix_path: str) -> list[tuple[str, Path, tuple[str, ...] | None]]:
    """(package, its share folder, the sub-folders that count or None for all), ours first."""
    shares: list[tuple[str, Path, tuple[str, ...] | None]] = [(PACKAGE, share_dir().resolve(), OUR_SHARED_FOLDERS)]
    for prefix in filter(None, ament_prefix_path.split(os.pathsep)):
        index = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages"
        if index.is_dir():
            shares += [(marker.name, (Path(prefix) / "share" / marker.name).resolve(), None)
                       for marker in sorted(index.iterdir())]
    return shares


@functools.lru_cache(maxsize=256)
def _mesh_resource_url(path: str, ament_prefix_path: str) -> str:
    resolved = Path(path).resolve()
    for package, share, folders in _package_shares(ament_prefix_path):
        try:
            relative = resolved.relative_to(share)
        except ValueError:
            continue
        if folders is None or relative.parts[0] in folders:
            return f"package://{package}/{relative.as_posix()}"
    return "file://" + str(resolved)


def mesh_resource_url(mesh_path: Path) -> str:
    """package://<package>/<path> for a mesh in a ROS package's share folder, else file://<absolute path>."""
    return _mesh_resource_url(str(mesh_path), os.environ.get("AMENT_PREFIX_PATH", ""))


def marker_array_msg(poses: Sequence[PoseEstimate], library: ObjectLibrary, header: Header, lifetime_s: float,
                     expired: Sequence[tuple[str, int]] = (), prefix: str = "") -> MarkerArray:
    """DELETE of the expired instances' markers (object id, instance id), then per pose a MESH_RESOURCE marker
    (namespace = object name, id = instance) and a TEXT_VIEW_FACING label '<prefix><name>_<instance>' above it
    (namespace '<name>/label', id = instance).

    The mesh marker loads the file itself (`mesh_resource_url`) in its own units and origin: scale =
    mesh_scale_to_m and the pose compensates origin_offset_m (`mesh_marker_T`). Meshes with their own colours
    or texture keep them (colour all zero: RViz uses the embedded materials); plain meshes get the object's colour.
    """
    lifetime = duration_msg(lifetime_s)
    markers = [Marker(header=header, ns=ns, id=int(ident), action=Marker.DELETE)
               for name, ident in expired for ns in (name, f"{name}/label")]
    for p in poses:
        obj = library.get(p.object_id)
        scale = float(obj.mesh_scale_to_m)
        mesh = Marker(header=header, ns=obj.name, id=int(p.instance), type=Marker.MESH_RESOURCE, action=Marker.ADD,
                      pose=pose_msg(mesh_marker_T(p.T_cam_obj, obj.origin_offset_m)),
                      scale=Vector3(x=scale, y=scale, z=scale), lifetime=lifetime,
                      color=ColorRGBA() if obj.has_appearance else object_colour(obj.name),
                      mesh_resource=mesh_resource_url(obj.mesh_path), mesh_use_embedded_materials=True)
        height = float(np.clip(LABEL_HEIGHT_FRACTION * obj.diameter_m, 0.01, 0.1))
        centre = p.T_cam_obj[:3, :3] @ box_centre_obj(library, obj.name) + p.T_cam_obj[:3, 3]
        above = centre - np.array([0.0, obj.diameter_m / 2 + height, 0.0])  # image up = −y (optical frame)
        label = Marker(header=header, ns=f"{obj.name}/label", id=int(p.instance), type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, pose=Pose(position=Point(x=float(above[0]), y=float(above[1]), z=float(above[2]))),
                       scale=Vector3(z=height), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), lifetime=lifetime,
                       text=instance_frame_id(obj.name, p.instance, prefix))
        label.pose.orientation.w = 1.0
        markers += [mesh, label]
    return MarkerArray(markers=markers)
