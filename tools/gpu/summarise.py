"""Collect what tools/gpu/check.sh measured (one folder of JSON files) into one JSON and print its table.

usage: python3 tools/gpu/summarise.py WORK_DIR OUT_JSON     (on the GPU machine, by check.sh)
       python3 tools/gpu/summarise.py OUT_JSON              (here: the table again, for docs/PERFORMANCE.md)
Standard library only: it runs on the bare device image and on this machine alike.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

STAGES = ("crop", "backbone", "stage1", "stage2", "stage3", "pnp", "verify", "align", "confidence", "total")


def collect(work: Path) -> dict:
    steps = []
    steps_file = work / "steps.txt"
    if steps_file.is_file():
        for line in steps_file.read_text().splitlines():
            name, rc, seconds = line.split()
            steps.append({"step": name, "exit": int(rc), "seconds": int(seconds)})
    return {"steps": steps, "results": {p.stem: json.loads(p.read_text()) for p in sorted(work.glob("*.json"))}}


def table(summary: dict) -> str:
    lines = ["| network | precision | objects | " + " | ".join(f"{s} ms" for s in STAGES) + " | Hz | GPU MiB |",
             "|---" * (len(STAGES) + 5) + "|"]
    gpu = None
    for name, report in summary["results"].items():
        if not name.startswith("bench_"):
            continue
        env = report["environment"]
        gpu = gpu or env.get("gpu_name")
        for result in report["results"]:
            latency = result["latency_s"]
            cells = [f"{1000 * latency[s]['median_s']:.1f}" if s in latency else "-" for s in STAGES]
            lines.append(f"| {env['network']} | {env['precision']} | {result['objects_per_frame']} | "
                         + " | ".join(cells) + f" | {result['hz']:.2f} | "
                         + ("-" if result["gpu_peak_mib"] is None else f"{result['gpu_peak_mib']:.0f}") + " |")
    templates = summary["results"].get("templates_gl")
    tail = []
    if templates:
        tail.append(f"templates on {templates['environment']['renderer']}: " + ", ".join(
            f"{r['object']} {r['build_s']:.2f} s" for r in templates["results"]))
    tail.append("steps: " + ", ".join(f"{s['step']} exit {s['exit']} ({s['seconds']} s)" for s in summary["steps"]))
    return "\n".join([f"GPU: {gpu}"] + lines + tail)


def main(argv: list[str]) -> int:
    if len(argv) == 2:
        summary = collect(Path(argv[0]))
        Path(argv[1]).write_text(json.dumps(summary, indent=1))
    elif len(argv) == 1:
        summary = json.loads(Path(argv[0]).read_text())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
