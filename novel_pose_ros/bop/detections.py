"""CNOS-style detection JSON: a list of {scene_id, image_id, category_id, bbox [x, y, w, h],
score, segmentation (COCO RLE), time}. RLE encoding/decoding is pycocotools'."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from novel_pose_ros.bop.results import InputProblem
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.types import Detection


@dataclass(frozen=True)
class BopDetection:
    """A detection in a BOP image. obj_id is the BOP category_id; mask is (H, W) bool or None."""

    scene_id: int
    im_id: int
    obj_id: int
    bbox_xywh: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None = None
    time_s: float = -1.0

    def to_detection(self, library: ObjectLibrary) -> Detection:
        """The core Detection (object_id = the library's name for obj_id); KeyError if unknown."""
        return Detection(object_id=library.get(self.obj_id).name, bbox_xywh=self.bbox_xywh, score=self.score, mask=self.mask)


def encode_mask(mask: np.ndarray) -> dict:
    """COCO compressed RLE with `counts` as text (JSON-serialisable)."""
    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(segmentation: dict) -> np.ndarray:
    """(H, W) bool from compressed (text counts) or uncompressed (list counts) COCO RLE."""
    height, width = (int(v) for v in segmentation["size"])
    if isinstance(segmentation["counts"], list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": [height, width], "counts": segmentation["counts"]}
    return coco_mask.decode(rle).astype(bool)


def detection_entry(d: BopDetection) -> dict:
    """The JSON entry of one detection (mask RLE-encoded), so writers can drop masks as they go."""
    entry = {
        "scene_id": d.scene_id, "image_id": d.im_id, "category_id": d.obj_id,
        "bbox": [float(v) for v in d.bbox_xywh], "score": float(d.score), "time": float(d.time_s),
    }
    if d.mask is not None:
        entry["segmentation"] = encode_mask(d.mask)
    return entry


def write_detections_json(path: str | Path, detections: list[BopDetection] | list[dict]) -> None:
    """Write detections (BopDetection objects, or entries already made by `detection_entry`)."""
    entries = [d if isinstance(d, dict) else detection_entry(d) for d in detections]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))


def read_detections_json(path: str | Path) -> tuple[list[BopDetection], list[InputProblem]]:
    """Every well-formed entry, plus a problem (file and entry index) for each skipped one."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"detections file {path}: not found") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"detections file {path}: invalid JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise ValueError(f"detections file {path}: expected a JSON list of detections")
    detections, problems = [], []
    for index, e in enumerate(entries):
        try:
            box = tuple(float(v) for v in e["bbox"])
            if len(box) != 4 or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
                raise ValueError(f"bad bbox {e['bbox']}")
            mask = decode_mask(e["segmentation"]) if e.get("segmentation") else None
            detections.append(BopDetection(
                scene_id=int(e["scene_id"]), im_id=int(e["image_id"]), obj_id=int(e["category_id"]),
                bbox_xywh=box, score=float(e.get("score", 1.0)), mask=mask, time_s=float(e.get("time", -1.0)),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(InputProblem(f"{path}:entry {index}", f"malformed detection ({exc!r})"))
    return detections, problems


def group_by_image(detections: list[BopDetection]) -> dict[tuple[int, int], list[BopDetection]]:
    """Detections keyed by (scene_id, im_id), in input order."""
    grouped: dict[tuple[int, int], list[BopDetection]] = {}
    for d in detections:
        grouped.setdefault((d.scene_id, d.im_id), []).append(d)
    return grouped
