"""BOP results CSV: `scene_id,im_id,obj_id,score,R,t,time`.

R: 9 numbers row-major separated by spaces; t: 3 numbers in millimetres; time:
seconds for the whole image (the same value on every row of one image, −1 if unknown).
Reading never stops at a bad line: each problem is returned with the file and line.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novel_pose_ros.geometry.se3 import is_rotation, make_T

# what the estimator runner may write as `score`: the pose confidence or the detector's score
RESULT_SCORES = ("confidence", "detection")
HEADER = ["scene_id", "im_id", "obj_id", "score", "R", "t", "time"]
M_PER_MM = 1e-3


@dataclass(frozen=True)
class PoseResult:
    """One estimated pose (metres). `line` is the CSV line it was read from (0 when not read from a file)."""

    scene_id: int
    im_id: int
    obj_id: int
    score: float
    T_cam_obj: np.ndarray
    time_s: float
    line: int = 0


@dataclass(frozen=True)
class InputProblem:
    """A line (or entry) that was skipped, and why. `where` = 'file:line'."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def write_results_csv(path: str | Path, results: list[PoseResult]) -> None:
    """Write results; t goes out in millimetres."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for r in results:
            T = np.asarray(r.T_cam_obj, dtype=np.float64)
            writer.writerow([
                r.scene_id, r.im_id, r.obj_id, f"{r.score:.6f}",
                " ".join(f"{v:.9g}" for v in T[:3, :3].ravel()),
                " ".join(f"{v:.6f}" for v in T[:3, 3] / M_PER_MM),
                f"{r.time_s:.6f}",
            ])


def _parse_row(row: list[str], line: int) -> PoseResult:
    if len(row) != 7:
        raise ValueError(f"expected 7 columns, got {len(row)}")
    try:
        scene_id, im_id, obj_id = int(row[0]), int(row[1]), int(row[2])
        score, time_s = float(row[3]), float(row[6])
        R = np.array([float(v) for v in row[4].split()], dtype=np.float64)
        t = np.array([float(v) for v in row[5].split()], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"cannot parse numbers ({exc})") from exc
    if R.size != 9 or t.size != 3:
        raise ValueError(f"R needs 9 numbers and t 3, got {R.size} and {t.size}")
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t)) and np.isfinite(score)):
        raise ValueError("non-finite value in R, t or score")
    R = R.reshape(3, 3)
    # Published BOP ground truth is orthonormal only to ~2e-3 (LM-O): accept it as written.
    if not is_rotation(R, atol=1e-2):
        raise ValueError("R is not a rotation matrix")
    return PoseResult(scene_id, im_id, obj_id, score, make_T(R, t * M_PER_MM), time_s, line=line)


def read_results_csv(path: str | Path) -> tuple[list[PoseResult], list[InputProblem]]:
    """All well-formed rows, plus a problem per skipped row (naming file and line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path}: not found")
    results, problems = [], []
    with path.open(newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            where = f"{path}:{line_no}"
            if not row or all(not c.strip() for c in row):
                continue
            if line_no == 1 and row[0].strip() == "scene_id":
                continue
            try:
                results.append(_parse_row(row, line_no))
            except ValueError as exc:
                problems.append(InputProblem(where, str(exc)))
    return results, problems
