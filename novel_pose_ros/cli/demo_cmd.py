"""`novel-pose demo`: the main job — a real ROS 2 graph from camera topics to /object_poses.

It generates a synthetic scene of the bundled objects, starts `pose_estimator` and
`bop_player` as separate ROS 2 processes on loopback, plays the scene (and the real
YCB-Video frame of ../shared/data/ycbv_real when present), collects /object_poses and the 3D
detections, and prints a table per frame with the error against the ground truth and the
latency, plus the overlay PNGs. It exits 0 when the graph worked, whatever the accuracy, and
says plainly when the accuracy is poor.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from novel_pose_ros.cli.table import format_table
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.paths import default_objects_file, share_dir

GOOD_TRANSLATION_M, GOOD_ROTATION_DEG = 0.02, 15.0
PLAY_RATE_HZ = 0.25  # slow enough for a 2-core CPU to answer every frame of a several-object scene


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run the ROS 2 graph on a synthetic scene (and real YCB-V frames)")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="folder for datasets, logs and overlays")
    demo.add_argument("--frames", type=int, default=3, help="synthetic frames to play")
    demo.add_argument("--ycbv", type=Path, default=share_dir().parent / "shared" / "data" / "ycbv_real",
                      help="BOP-format YCB-V frames to play as well (skipped when absent)")
    demo.add_argument("--weights", default="", help="checkpoint for the estimator (empty: the default)")
    demo.add_argument("--timeout-s", type=float, default=300.0)
    demo.set_defaults(handler=run_demo)


def _synthetic_dataset(out: Path, frames: int) -> Path:
    from novel_pose_ros.synth import SynthSettings, generate_dataset

    dataset = out / "synthetic"
    generate_dataset(ObjectLibrary.from_yaml(default_objects_file()), dataset, scenes=1, images_per_scene=frames, seed=7,
                     settings=SynthSettings(objects_per_scene=(2, 4)), show_progress=False, overwrite=True)
    return dataset


def _ycbv_objects_file(ycbv: Path, out: Path, scene_id: int) -> Path:
    """An objects YAML naming the ycbv models of one scene obj_XXXXXX (mm meshes)."""
    from novel_pose_ros.bop.dataset import BopDataset

    ids = sorted({g.obj_id for image in BopDataset(ycbv).scenes[scene_id].values() for g in image.gt})
    lines = ["objects:"] + [f"  - {{id: {i}, name: obj_{i:06d}, mesh: {ycbv / 'models' / f'obj_{i:06d}.ply'}, units: mm}}" for i in ids]
    path = out / f"ycbv_scene{scene_id}_objects.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _report(label: str, results: list) -> tuple[bool, list[tuple[float, float]]]:
    """Print the per-frame table; (did any frame get an answer, per-estimate errors)."""
    rows, errors = [], []
    for result in results:
        frame = f"{result.scene_id}/{result.im_id}"
        latency = f"{1000 * result.latency_s:.0f}" if result.latency_s is not None else "-"
        if not result.estimates:
            rows.append([frame, "(no pose)", "", "", "", "", "", "", latency])
        for (name, instance, T, score), error in zip(result.estimates, result.errors()):
            rotvec = np.degrees(Rotation.from_matrix(T[:3, :3]).as_rotvec())
            te, re = (f"{1000 * error[0]:.0f}", f"{error[1]:.1f}") if error else ("-", "-")
            if error:
                errors.append(error)
            rows.append([frame, f"{name} ({instance})", " ".join(f"{v:+.3f}" for v in T[:3, 3]), " ".join(f"{v:+.0f}" for v in rotvec),
                         f"{score:.2f}", te, re, len(result.ground_truth), latency])
    print(f"\n== {label}: {len(results)} frames ==")
    print(format_table(["frame", "object (detection id)", "t (m)", "rotation vector (deg)", "confidence", "t err (mm)", "R err (deg)",
                        "GT objects", "latency (ms)"], rows))
    for result in results:
        if result.overlay_path:
            print(f"overlay {result.scene_id}/{result.im_id}: {result.overlay_path}")
    dropped = [f"{r.scene_id}/{r.im_id}" for r in results if r.poses_in_pose_array is None]
    if dropped:
        print(f"frames without an answer: {', '.join(dropped)} (the node keeps only the newest frame while it is busy)")
    return len(dropped) < len(results), errors


def _echo_first_use(node_log: Path) -> None:
    """Say on the console what the node's first start did once (ONNX export of the weights), from its log."""
    if node_log.is_file():
        for line in node_log.read_text(errors="replace").splitlines():
            if "first use of these" in line or "ONNX export of" in line:
                print("(first run) " + line.split("]: ", 1)[-1])


def run_demo(args: argparse.Namespace) -> int:
    from novel_pose_ros.ros.demo_graph import play_dataset

    start = time.perf_counter()
    out = args.out.resolve()
    estimator_params = {"weights": args.weights} if args.weights else {}
    runs = [("synthetic", _synthetic_dataset(out, args.frames), default_objects_file(),
             {"detections_file": "detections_gt.json", "detections_from_gt": False, "rate_hz": PLAY_RATE_HZ})]
    if (args.ycbv / "test" / "000048").is_dir():
        runs.append(("ycbv_real", args.ycbv.resolve(), _ycbv_objects_file(args.ycbv.resolve(), out, 48),
                     {"detections_from_gt": True, "scene_ids": "[48]", "rate_hz": PLAY_RATE_HZ}))
    else:
        print(f"({args.ycbv} not found: playing the synthetic scene only)")
    graph_ok, all_errors = True, []
    for label, dataset, objects_file, player_params in runs:
        results = play_dataset(dataset, objects_file, out, estimator_params, player_params, label, args.timeout_s)
        _echo_first_use(out / f"{label}_pose_estimator.log")
        answered, errors = _report(label, results)
        graph_ok &= answered
        all_errors += errors
    print(f"\nlogs and overlays: {out}; demo took {time.perf_counter() - start:.0f} s")
    if not graph_ok:
        print("the graph did NOT work: a dataset got no answer at all (see the logs)")
        return 1
    good = sum(1 for te, re in all_errors if te < GOOD_TRANSLATION_M and re < GOOD_ROTATION_DEG)
    print(f"the graph worked: poses arrived on /object_poses and TF. Accuracy: {good}/{len(all_errors)} poses within "
          f"{1000 * GOOD_TRANSLATION_M:.0f} mm and {GOOD_ROTATION_DEG:.0f} deg of the ground truth.")
    if len(all_errors) and good < 0.5 * len(all_errors):
        print("Accuracy is poor: most poses are far from the ground truth. The estimator runs the weights it was "
              "given (untrained when none are shipped); see models/ and the README for what accuracy to expect.")
    return 0
