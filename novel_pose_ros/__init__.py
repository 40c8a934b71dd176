"""novel_pose_ros: 6D pose estimation of novel objects from RGB and CAD meshes.

The core (every sub-package but `ros/`) is ROS-agnostic; conventions (units,
frames, pixel centres) are in docs/CONVENTIONS.md.
"""

__version__ = "0.1.0"
