"""The core types, defined once: Frame, Detection, Symmetries, ObjectModel, PoseEstimate.

Units: metres, radians, seconds. Images are H×W×3 uint8 RGB; depth is float32
metres with 0 = invalid. Camera frame: OpenCV optical (x right, y down, z forward).
Every type checks its arrays on construction and says expected vs actual.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from novel_pose_ros.geometry.camera import validate_K
from novel_pose_ros.geometry.se3 import check_shape, is_rotation


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Frame:
    """One camera image with its intrinsics.

    image: (H, W, 3) uint8 RGB.
    K: (3, 3) intrinsics in pixels.
    depth_m: optional (H, W) float32 metres, 0 = invalid.
    stamp_s: capture time in seconds; frame_id: the camera optical frame.
    """

    image: np.ndarray
    K: np.ndarray
    depth_m: np.ndarray | None = None
    stamp_s: float = 0.0
    frame_id: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"Frame.image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "K", validate_K(self.K, "Frame.K"))
        if self.depth_m is not None:
            depth = np.asarray(self.depth_m, dtype=np.float32)
            if depth.shape != image.shape[:2]:
                raise ValueError(f"Frame.depth_m: expected shape {image.shape[:2]}, got {depth.shape}")
            object.__setattr__(self, "depth_m", depth)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Detection:
    """A 2D detection of a known object.

    object_id: the object's name (a string, as in the object library).
    bbox_xywh: (x, y, w, h) in pixels; x, y = top-left pixel index.
    score: detector confidence in [0, 1].
    mask: optional (H, W) bool visible mask in the full image.
    """

    object_id: str
    bbox_xywh: tuple[float, float, float, float]
    score: float = 1.0
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in check_shape("Detection.bbox_xywh", np.ravel(self.bbox_xywh), (4,)))
        if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"Detection.bbox_xywh: width and height must be positive and finite, got {box}")
        object.__setattr__(self, "bbox_xywh", box)
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.ndim != 2:
                raise ValueError(f"Detection.mask: expected (H, W), got {mask.shape}")
            object.__setattr__(self, "mask", mask.astype(bool, copy=False))


@dataclass(frozen=True)
class Symmetries:
    """Symmetry transforms of an object, in its own frame (metres).

    discrete: (D, 4, 4) transforms S with the object looking identical under x -> S x
        (identity not included).
    continuous_axes: (C, 3) unit axes and continuous_offsets_m: (C, 3) points on them;
        the object is identical under any rotation about such an axis.
    """

    discrete: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    continuous_axes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    continuous_offsets_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def __post_init__(self) -> None:
        discrete = check_shape("Symmetries.discrete", np.asarray(self.discrete).reshape(-1, 4, 4), (None, 4, 4))
        for i, S in enumerate(discrete):
            if not is_rotation(S[:3, :3], atol=1e-3):
                raise ValueError(f"Symmetries.discrete[{i}]: rotation part is not a rotation matrix")
        axes = check_shape("Symmetries.continuous_axes", np.asarray(self.continuous_axes).reshape(-1, 3), (None, 3))
        offsets = check_shape("Symmetries.continuous_offsets_m", np.asarray(self.continuous_offsets_m).reshape(-1, 3), (len(axes), 3))
        norms = np.linalg.norm(axes, axis=1)
        if np.any(norms == 0) or not np.all(np.isfinite(axes)):
            raise ValueError("Symmetries.continuous_axes: axes must be finite and non-zero")
        object.__setattr__(self, "discrete", _readonly(discrete))
        object.__setattr__(self, "continuous_axes", _readonly(axes / norms[:, None]))
        object.__setattr__(self, "continuous_offsets_m", _readonly(offsets))

    @property
    def is_symmetric(self) -> bool:
        return len(self.discrete) > 0 or len(self.continuous_axes) > 0


@dataclass(frozen=True)
class ObjectModel:
    """A rigid object known by its mesh.

    id: integer id (the BOP obj_id at the BOP boundary); name: stable string id used in ROS.
    mesh: trimesh geometry in metres, in the object frame (origin as given, or
        re-centred by the origin policy; `origin_offset_m` is the point of the
        source mesh that became the origin).
    diameter_m: largest distance between two vertices.
    mesh_path: the file it came from; mesh_scale_to_m: factor from the file's units to metres
        (0.001 for a mm mesh), needed e.g. by RViz mesh markers that load the file itself.
    content_hash: sha256 of the mesh file and its texture files plus the load settings.
    """

    id: int
    name: str
    mesh: trimesh.Trimesh
    diameter_m: float
    symmetries: Symmetries
    mesh_path: Path
    mesh_scale_to_m: float
    origin_offset_m: np.ndarray
    content_hash: str

    @property
    def extents_m(self) -> np.ndarray:
        """Axis-aligned bounding-box size (3,) in metres."""
        return np.asarray(self.mesh.extents, dtype=np.float64)

    @property
    def has_appearance(self) -> bool:
        """True when the mesh carries vertex/face colours or a UV texture (else it renders flat grey)."""
        visual = self.mesh.visual
        if visual.kind == "texture":
            return getattr(visual.material, "image", None) is not None or getattr(visual.material, "baseColorTexture", None) is not None
        return visual.kind in ("vertex", "face")


@dataclass(frozen=True)
class StageTimings:
    """Wall time per stage for one estimate call, seconds (stage name -> seconds)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return float(sum(self.seconds.values()))


@dataclass(frozen=True)
class PoseHypothesis:
    """One pose candidate considered for a detection (e.g. one per top template)."""

    T_cam_obj: np.ndarray
    score: float
    source: str  # which stage produced it, e.g. "pnp", "affine_fallback"
    inliers: int = 0  # PnP inliers of the pose (0 where no PnP made it)
    correspondences: int = 0  # of how many 2D-3D correspondences
    template_score: float = 0.0  # the coarse stage's score of the hypothesis' template (PicoPose stage 1)


@dataclass(frozen=True)
class PoseEstimate:
    """The estimated pose of one object instance.

    object_id: the object's name; instance: index among this frame's instances of that object.
    T_cam_obj: (4, 4) pose of the object in the camera optical frame (metres).
    score: the detector's score of the detection (in [0, 1]); detection_index: which input detection it came from.
    confidence: the estimated probability that the pose is right (MSSD < 0.2 × the object's diameter), from
    the verification features `evidence` (estimation/confidence.py); None where no model was applied.
    """

    object_id: str
    instance: int
    T_cam_obj: np.ndarray
    score: float
    detection_index: int
    timings: StageTimings = field(default_factory=StageTimings)
    hypotheses: tuple[PoseHypothesis, ...] = ()
    confidence: float | None = None
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def ranking_score(self) -> float:
        """What orders poses (best instance, BOP top-N): the confidence, else the detection score."""
        return self.score if self.confidence is None else self.confidence

    def __post_init__(self) -> None:
        T = check_shape("PoseEstimate.T_cam_obj", self.T_cam_obj, (4, 4))
        if not is_rotation(T[:3, :3], atol=1e-3) or not np.all(np.isfinite(T)):
            raise ValueError("PoseEstimate.T_cam_obj: rotation part is not a finite rotation matrix")
        object.__setattr__(self, "T_cam_obj", _readonly(T))

    @property
    def R(self) -> np.ndarray:
        return self.T_cam_obj[:3, :3]

    @property
    def t_m(self) -> np.ndarray:
        return self.T_cam_obj[:3, 3]
