"""Object library: meshes loaded with trimesh, converted to metres once, with diameters and symmetries."""

from novel_pose_ros.objects.library import ObjectLibrary
from novel_pose_ros.objects.mesh_loading import MeshError, load_object

__all__ = ["MeshError", "ObjectLibrary", "load_object"]
