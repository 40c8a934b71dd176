"""A time-indexed transform tree, like tf2's buffer: the pose of one frame in another at a given time.

Each edge (parent → child) keeps its samples of the last `cache_s` seconds (static edges keep one,
valid at every time). A lookup at time t chains the edges on the path between the two frames, each
interpolated at t (translation linearly, rotation by slerp between the two samples around t). Like
tf2 it never extrapolates: a time before an edge's oldest sample or after its newest is an error
that says which edge and by how much, so a caller can wait for the transform or report it.

Pure numpy/scipy (no ROS), so that a script, a test and the node share it; ros/tf_buffer.py feeds it
from /tf and /tf_static. `T_a_b` maps b-frame points into a (STYLE.md).
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from novel_pose_ros.geometry.se3 import check_shape, invert_T, make_T

DEFAULT_CACHE_S = 10.0  # tf2's default buffer length


class TransformUnavailable(LookupError):
    """The transform cannot be given at that time: `reason` names the frames, the edge and the times."""


@dataclass
class _EdgeSamples:
    """One edge's samples, oldest first (times in nanoseconds; T_parent_child)."""
    static: bool = False
    stamps_ns: list[int] = field(default_factory=list)
    transforms: list[np.ndarray] = field(default_factory=list)

    def add(self, stamp_ns: int, T: np.ndarray, cache_ns: int) -> None:
        if self.static:
            self.stamps_ns, self.transforms = [stamp_ns], [T]
            return
        at = bisect.bisect_left(self.stamps_ns, stamp_ns)
        if at < len(self.stamps_ns) and self.stamps_ns[at] == stamp_ns:  # a re-sent sample replaces its twin
            self.transforms[at] = T
        else:
            self.stamps_ns.insert(at, stamp_ns)
            self.transforms.insert(at, T)
        oldest_kept = bisect.bisect_left(self.stamps_ns, self.stamps_ns[-1] - cache_ns)
        del self.stamps_ns[:oldest_kept], self.transforms[:oldest_kept]

    def at(self, stamp_ns: int) -> np.ndarray | str:
        """T_parent_child at stamp_ns, or why not (a sentence)."""
        if self.static:
            return self.transforms[0]
        stamps = self.stamps_ns
        if stamp_ns < stamps[0]:
            return f"the time is {(stamps[0] - stamp_ns) * 1e-9:.3f} s before its oldest sample kept"
        if stamp_ns > stamps[-1]:
            return f"its newest sample is {(stamp_ns - stamps[-1]) * 1e-9:.3f} s older than the time (no extrapolation)"
        after = bisect.bisect_left(stamps, stamp_ns)
        if stamps[after] == stamp_ns:
            return self.transforms[after]
        t0, t1 = stamps[after - 1], stamps[after]
        T0, T1 = self.transforms[after - 1], self.transforms[after]
        w = (stamp_ns - t0) / (t1 - t0)
        rotation = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]])))([w]).as_matrix()[0]
        return make_T(rotation, (1.0 - w) * T0[:3, 3] + w * T1[:3, 3])


class TransformHistory:
    """Thread-safe: `add` from a subscription callback, `lookup` from a worker (which may `wait_for` it)."""

    def __init__(self, cache_s: float = DEFAULT_CACHE_S) -> None:
        if not cache_s > 0:
            raise ValueError(f"cache_s must be > 0, got {cache_s}")
        self._cache_ns = int(cache_s * 1e9)
        self._edges: dict[tuple[str, str], _EdgeSamples] = {}  # (parent, child)
        self._parent: dict[str, str] = {}  # child -> parent: a tree, as tf requires
        self._changed = threading.Condition()

    def add(self, parent: str, child: str, stamp_ns: int, T_parent_child: np.ndarray, static: bool = False) -> None:
        """One sample of an edge; a child that changes parent moves to the new one (as tf2 does)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        T = check_shape("T_parent_child", np.asarray(T_parent_child, dtype=np.float64), (4, 4))
        with self._changed:
            old_parent = self._parent.get(child)
            if old_parent is not None and old_parent != parent:
                del self._edges[(old_parent, child)]
            self._parent[child] = parent
            edge = self._edges.setdefault((parent, child), _EdgeSamples(static=static))
            edge.static = static
            edge.add(int(stamp_ns), T, self._cache_ns)
            self._changed.notify_all()

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """T_target_source at stamp_ns; raises TransformUnavailable naming the missing link or time."""
        target, source = target.lstrip("/"), source.lstrip("/")
        with self._changed:
            return self._lookup(target, source, int(stamp_ns))

    def wait_for(self, target: str, source: str, stamp_ns: int, timeout_s: float) -> np.ndarray:
        """lookup, waiting up to timeout_s for samples that make it possible (a TF publisher a little behind
        the camera); raises TransformUnavailable with the last reason when the time runs out."""
        target, source = target.lstrip("/"), source.lstrip("/")
        with self._changed:
            outcome: list[np.ndarray | TransformUnavailable] = []  # the last attempt's transform or reason

            def available() -> bool:
                try:
                    outcome[:] = [self._lookup(target, source, int(stamp_ns))]
                except TransformUnavailable as exc:
                    outcome[:] = [exc]
                return not isinstance(outcome[0], TransformUnavailable)
            if not self._changed.wait_for(available, timeout=max(timeout_s, 0.0)):
                raise outcome[0]
            return outcome[0]

    def _lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        if target == source:
            return np.eye(4)
        up_target, up_source = self._chain_to_root(target), self._chain_to_root(source)
        on_source_side = set(up_source)
        common = next((frame for frame in up_target if frame in on_source_side), None)
        if common is None:
            known = "unknown frame" if target not in self._parent and source not in self._parent else "not connected"
            raise TransformUnavailable(f"'{source}' and '{target}' are {known} in the transform tree "
                                       f"(roots: '{up_source[-1]}', '{up_target[-1]}')")
        T_common_source = self._down_from(common, up_source, stamp_ns)
        T_common_target = self._down_from(common, up_target, stamp_ns)
        return invert_T(T_common_target) @ T_common_source

    def _chain_to_root(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent and len(chain) <= len(self._parent):  # the bound breaks a cycle
            chain.append(self._parent[chain[-1]])
        return chain

    def _down_from(self, ancestor: str, chain: list[str], stamp_ns: int) -> np.ndarray:
        """T_ancestor_frame for chain = [frame, parent, ..., ancestor, ...]."""
        T = np.eye(4)
        for child, parent in zip(chain, chain[1:]):
            if child == ancestor:
                break
            sample = self._edges[(parent, child)].at(stamp_ns)
            if isinstance(sample, str):
                raise TransformUnavailable(f"transform '{parent}' -> '{child}' at {stamp_ns * 1e-9:.3f} s: {sample}")
            T = sample @ T
        return T
