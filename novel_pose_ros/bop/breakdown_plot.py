"""The files of a pose-error breakdown (bop/breakdown.py): its JSON and a histogram PNG drawn with OpenCV."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from novel_pose_ros.bop.breakdown import Breakdown
from novel_pose_ros.bop.dataset import M_PER_MM

PANEL_W, PANEL_H = 480, 320
# title, x-axis label, range, bins, tick step
HISTOGRAMS = (("rotation error", "deg", 180.0, 18, 30.0), ("depth error", "% of GT depth", 50.0, 20, 10.0),
              ("image-plane error", "mm", 50.0, 20, 10.0), ("MSSD / diameter", "fraction of diameter", 1.0, 20, 0.2))


def _histogram_panel(title: str, x_label: str, values: np.ndarray, high: float, bins: int, tick: float) -> np.ndarray:
    """(PANEL_H, PANEL_W, 3) uint8 RGB histogram of `values` on [0, high]; values above go to the last bin."""
    panel = np.full((PANEL_H, PANEL_W, 3), 255, np.uint8)
    values = np.asarray(values, dtype=np.float64)
    over = int(np.count_nonzero(values > high))
    counts, _ = np.histogram(np.clip(values, 0.0, high), bins=bins, range=(0.0, high))
    left, right, top, bottom = 55, PANEL_W - 20, 45, PANEL_H - 55
    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    peak = max(int(counts.max()) if counts.size else 0, 1)
    bin_w = (right - left) / bins
    for i, c in enumerate(counts):
        if c:
            x0, x1 = int(round(left + i * bin_w)) + 1, int(round(left + (i + 1) * bin_w)) - 1
            cv2.rectangle(panel, (x0, int(round(bottom - c / peak * (bottom - top)))), (x1, bottom), (60, 110, 200), -1)
    cv2.line(panel, (left, bottom), (right, bottom), black, 1)
    cv2.line(panel, (left, top), (left, bottom), black, 1)
    for k in range(int(round(high / tick)) + 1):
        x = int(round(left + k * tick / high * (right - left)))
        cv2.line(panel, (x, bottom), (x, bottom + 4), black, 1)
        label = f"{k * tick:g}"
        cv2.putText(panel, label, (x - 4 * len(label), bottom + 18), font, 0.4, black, 1, cv2.LINE_AA)
    for count, y in ((0, bottom), (peak, top)):
        cv2.putText(panel, str(count), (left - 8 - 8 * len(str(count)), y + 4), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.putText(panel, "count", (5, top - 12), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.putText(panel, x_label, (left + (right - left) // 2 - 4 * len(x_label), PANEL_H - 15), font, 0.45, black, 1, cv2.LINE_AA)
    heading = f"{title}  (n={values.size}" + (f", {over} above {high:g} in last bin)" if over else ")")
    cv2.putText(panel, heading, (10, 22), font, 0.5, black, 1, cv2.LINE_AA)
    return panel


def breakdown_image(breakdown: Breakdown) -> np.ndarray:
    """(2 PANEL_H, 2 PANEL_W, 3) uint8 RGB: histograms of rotation, depth, plane and MSSD / d errors."""
    done = [r for r in breakdown.rows if not r.missing]
    values = ([r.rotation_error_deg for r in done], [100.0 * r.depth_error for r in done],
              [r.plane_error_m / M_PER_MM for r in done], [r.mssd_m / r.diameter_m for r in done])
    panels = [_histogram_panel(*spec[:2], np.asarray(v, np.float64), *spec[2:]) for spec, v in zip(HISTOGRAMS, values)]
    return np.vstack([np.hstack(panels[:2]), np.hstack(panels[2:])])


def write_breakdown(breakdown: Breakdown, out_dir: str | Path) -> tuple[Path, Path]:
    """Write out_dir/breakdown.json and out_dir/breakdown.png; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "breakdown.json", out_dir / "breakdown.png"
    json_path.write_text(breakdown.to_json())
    if not cv2.imwrite(str(png_path), cv2.cvtColor(breakdown_image(breakdown), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {png_path}")
    return json_path, png_path
