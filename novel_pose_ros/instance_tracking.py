"""Which object instance is which across frames: `mug_0` stays the same mug while it stays in view.

A detector numbers nothing: the first mug of one frame may be the second of the next. The tracker
keeps, per object, the instances seen in the last `timeout_s` seconds (their box, mask and pose)
and gives each new sighting the id of the instance it overlaps (mask IoU when both have masks, else
box IoU) or lies near (translation within `max_offset_diameters` object diameters); the pairing is
the one of least total cost (Hungarian, scipy), so two mugs that swap order in the detection list
keep their ids. A sighting that matches nothing starts a new instance with the smallest free id;
an instance not seen for longer than `timeout_s` is forgotten and reported as expired (so its
marker can be deleted). Times are the frames' stamps; a stamp that goes back (a bag restarted)
forgets every instance.

ROS-agnostic; the node feeds it its poses in the frame it publishes them in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from novel_pose_ros.geometry.se3 import check_shape

UNMATCHABLE = 1e6  # the cost of a pair that may not be matched


@dataclass(frozen=True)
class Sighting:
    """One pose of a frame. box_xywh: pixels (4,); mask: H×W bool or None; T_ref_obj: 4×4, metres, in the
    frame the poses are compared in (the published one); diameter_m: the object's."""
    object_id: str
    box_xywh: np.ndarray
    mask: np.ndarray | None
    T_ref_obj: np.ndarray
    diameter_m: float


@dataclass
class _Instance:
    ident: int
    sighting: Sighting
    last_seen_s: float


def box_iou(a_xywh: np.ndarray, b_xywh: np.ndarray) -> float:
    ax, ay, aw, ah = (float(v) for v in a_xywh)
    bx, by, bw, bh = (float(v) for v in b_xywh)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - iw * ih
    return iw * ih / union if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


class InstanceTracker:
    def __init__(self, timeout_s: float, min_iou: float = 0.3, max_offset_diameters: float = 0.5) -> None:
        if not timeout_s > 0 or not 0 < min_iou <= 1 or not max_offset_diameters > 0:
            raise ValueError(f"InstanceTracker: timeout_s > 0, 0 < min_iou ≤ 1 and max_offset_diameters > 0 are "
                             f"required, got {timeout_s}, {min_iou}, {max_offset_diameters}")
        self.timeout_s, self.min_iou, self.max_offset_diameters = timeout_s, min_iou, max_offset_diameters
        self._instances: dict[str, list[_Instance]] = {}
        self._latest_s: float | None = None

    def live(self) -> list[tuple[str, int]]:
        """(object id, instance id) of every instance remembered, sorted."""
        return sorted((name, inst.ident) for name, items in self._instances.items() for inst in items)

    def assign(self, stamp_s: float, sightings: list[Sighting]) -> tuple[list[int], list[tuple[str, int]]]:
        """(instance id of each sighting, in order; the (object id, instance id) pairs that expired at this frame)."""
        expired = self._expire(stamp_s)
        ids: list[int | None] = [None] * len(sightings)
        by_object: dict[str, list[int]] = {}
        for index, sighting in enumerate(sightings):
            check_shape("T_ref_obj", sighting.T_ref_obj, (4, 4))
            by_object.setdefault(sighting.object_id, []).append(index)
        for name, indices in by_object.items():
            instances = self._instances.setdefault(name, [])
            matched = self._match([sightings[i] for i in indices], instances)
            for row, index in enumerate(indices):
                column = matched.get(row)
                if column is None:
                    instance = _Instance(self._free_id(instances), sightings[index], stamp_s)
                    instances.append(instance)
                else:
                    instance = instances[column]
                    instance.sighting, instance.last_seen_s = sightings[index], stamp_s
                ids[index] = instance.ident
        return [int(i) for i in ids], expired

    def _expire(self, stamp_s: float) -> list[tuple[str, int]]:
        if self._latest_s is not None and stamp_s < self._latest_s:  # time went back: nothing seen is still valid
            expired = self.live()
            self._instances.clear()
        else:
            expired = [(name, inst.ident) for name, items in self._instances.items() for inst in items
                       if stamp_s - inst.last_seen_s > self.timeout_s]
            for name in self._instances:
                self._instances[name] = [inst for inst in self._instances[name]
                                         if stamp_s - inst.last_seen_s <= self.timeout_s]
        self._latest_s = stamp_s
        return sorted(expired)

    def _match(self, sightings: list[Sighting], instances: list[_Instance]) -> dict[int, int]:
        """sighting row -> instance column, for the admissible pairs of the least-cost assignment."""
        if not sightings or not instances:
            return {}
        cost = np.array([[self._cost(s, inst.sighting) for inst in instances] for s in sightings])
        rows, columns = linear_sum_assignment(cost)
        return {int(r): int(c) for r, c in zip(rows, columns) if cost[r, c] < UNMATCHABLE}

    def _cost(self, new: Sighting, old: Sighting) -> float:
        """0 for the same box and place; UNMATCHABLE when neither overlap nor distance admits the pair."""
        if new.mask is not None and old.mask is not None and new.mask.shape == old.mask.shape:
            iou = mask_iou(new.mask, old.mask)
        else:
            iou = box_iou(new.box_xywh, old.box_xywh)
        offset = float(np.linalg.norm(new.T_ref_obj[:3, 3] - old.T_ref_obj[:3, 3])) / max(new.diameter_m, 1e-9)
        if iou < self.min_iou and offset > self.max_offset_diameters:
            return UNMATCHABLE
        return (1.0 - iou) + min(offset / self.max_offset_diameters, 1.0)

    @staticmethod
    def _free_id(instances: list[_Instance]) -> int:
        used = {inst.ident for inst in instances}
        return next(i for i in range(len(used) + 1) if i not in used)
