"""Training logs: JSON lines (one record per log interval or validation) and a PNG of the curves.

`train_log.jsonl` records: {"kind": "train", "step", "lr", "loss", <terms>, "sec_per_step", "data_s",
"compute_s"} and {"kind": "validation", "step", "val_loss", <val terms>, "ar", "ar_mssd", ...}.
The plot is drawn with OpenCV (no plotting dependency): the total and the stage losses on a log
scale, and the validation AR when there is one.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

CURVES = (("loss", (255, 255, 255)), ("infonce", (80, 180, 255)), ("translation", (80, 255, 120)),
          ("scale", (255, 200, 60)), ("inplane", (255, 120, 220)), ("flow64", (60, 60, 255)),
          ("cert64", (200, 200, 120)), ("val_loss", (0, 255, 255)))


class JsonLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (a resumed run rewrites them)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))


class TrainMeter:
    """Mean loss values and seconds per step between two "train" log records (loss first, then `terms`)."""

    def __init__(self, terms: tuple[str, ...]) -> None:
        self.terms = tuple(terms)
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.terms) + 1, dtype=torch.float64)
        self.counted, self.skipped, self.data_s, self.compute_s = 0, 0, 0.0, 0.0

    def add(self, values: list[float], stepped: bool, data_s: float, compute_s: float) -> None:
        """One step: its loss values (counted only when the update was taken) and its data / compute seconds."""
        if stepped:
            self.sums += torch.tensor(values, dtype=torch.float64)
            self.counted += 1
        else:
            self.skipped += 1
        self.data_s += data_s
        self.compute_s += compute_s

    def record(self, step: int, lr: float, dist) -> dict:
        """The record of the steps since the last one (means over ranks), then start again."""
        means, n = dist.mean(self.sums / max(self.counted, 1)), max(self.counted + self.skipped, 1)
        record = {"kind": "train", "step": step, "lr": lr, "loss": float(means[0]),
                  **{k: float(v) for k, v in zip(self.terms, means[1:])},
                  "sec_per_step": (self.data_s + self.compute_s) / n, "data_s": self.data_s / n,
                  "compute_s": self.compute_s / n, "skipped": self.skipped}
        self.reset()
        return record


def curve_panel(records: list[dict], keys, size: tuple[int, int], title: str, log_scale: bool) -> np.ndarray:
    w, h = size
    image = np.full((h, w, 3), 30, np.uint8)
    cv2.putText(image, title, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    series = {k: [(r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])
                  and (r[k] > 0 or not log_scale)] for k, _ in keys}
    points = [p for s in series.values() for p in s]
    if not points:
        return image
    steps = np.array([p[0] for p in points], float)
    values = np.array([p[1] for p in points], float)
    values = np.log10(values) if log_scale else values
    x0, x1 = steps.min(), max(steps.max(), steps.min() + 1)
    y0, y1 = values.min(), max(values.max(), values.min() + 1e-6)
    left, right, top, bottom = 60, w - 10, 28, h - 24
    for t in np.linspace(y0, y1, 5):
        y = int(bottom - (t - y0) / (y1 - y0) * (bottom - top))
        cv2.line(image, (left, y), (right, y), (60, 60, 60), 1)
        label = f"{10 ** t:.3g}" if log_scale else f"{t:.3g}"
        cv2.putText(image, label, (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (180, 180, 180), 1, cv2.LINE_AA)
    cv2.putText(image, f"step {int(x0)} .. {int(x1)}", (left, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (180, 180, 180), 1)
    legend_x = left + 140
    for key, colour in keys:
        data = series.get(key) or []
        if not data:
            continue
        xs = np.array([d[0] for d in data], float)
        ys = np.array([d[1] for d in data], float)
        ys = np.log10(ys) if log_scale else ys
        pts = np.stack([left + (xs - x0) / (x1 - x0) * (right - left), bottom - (ys - y0) / (y1 - y0) * (bottom - top)], 1)
        pts = np.round(pts).astype(np.int32)
        cv2.polylines(image, [pts], False, colour[::-1], 1, cv2.LINE_AA)
        if len(pts) <= 60:  # sparse series (validation): mark every point, so a single one shows too
            for x, y in pts:
                cv2.circle(image, (int(x), int(y)), 3, colour[::-1], -1, cv2.LINE_AA)
        cv2.putText(image, key, (legend_x, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour[::-1], 1, cv2.LINE_AA)
        legend_x += 9 * len(key) + 12
    return image


def plot_curves(records: list[dict], path: str | Path, width: int = 1000) -> Path:
    """Write the loss (log scale) and validation-AR panels as a PNG."""
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "validation"]
    panels = [curve_panel(train + [{"step": r["step"], "val_loss": r.get("val_loss")} for r in val], CURVES,
                     (width, 360), "losses (log10)", True)]
    if any("ar" in r for r in val):
        panels.append(curve_panel(val, (("ar", (0, 255, 255)), ("ar_mssd", (80, 255, 120)), ("ar_mspd", (255, 200, 60)),
                                   ("ar_vsd", (255, 120, 220))), (width, 220), "validation AR (held-out objects)", False))
    path = Path(path)
    cv2.imwrite(str(path), np.vstack(panels))
    return path


@dataclass(frozen=True)
class Panel:
    """One panel of a curves PNG: keys ((record key, RGB colour), ...), title, height px, log10 scale,
    drawn from the train and validation records or (validation_only) the validation ones."""

    keys: tuple
    title: str
    height: int = 260
    log_scale: bool = False
    validation_only: bool = False


def write_curves(records: list[dict], path: str | Path, panels: tuple[Panel, ...], width: int = 1000) -> Path:
    """The panels stacked into one PNG at `path` (the Co-op trainers' curves.png)."""
    val = [r for r in records if r.get("kind") == "validation"]
    both = [r for r in records if r.get("kind") == "train"] + val
    images = [curve_panel(val if p.validation_only else both, p.keys, (width, p.height), p.title, p.log_scale)
              for p in panels]
    path = Path(path)
    cv2.imwrite(str(path), np.vstack(images))
    return path
