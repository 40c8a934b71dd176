"""What a training burst (tools/gpu/train_burst.sh) did, as one JSON: steps, why it stopped, the final validation.

usage: python3 tools/gpu/burst_summary.py RUN_DIR OUT_JSON [KEY=VALUE ...]
  RUN_DIR   the run's out_dir (train_log.jsonl, checkpoints/latest.json)
  KEY=VALUE added to the JSON as strings (the script's seed, init weights, GPU, minutes, exit status)
Prints one line (steps, AR) for the console log. Standard library only: it runs on the bare device image.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def summarise(run_dir: Path, extra: dict[str, str]) -> dict:
    log = run_dir / "train_log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    train = [r for r in records if r.get("kind") == "train"]
    validation = [r for r in records if r.get("kind") == "validation"]
    stop = [r for r in records if r.get("kind") == "stop"]
    latest = run_dir / "checkpoints" / "latest.json"
    final = validation[-1] if validation else {}
    return {
        "steps": train[-1]["step"] if train else 0,
        "stopped_by": stop[-1]["reason"] if stop else ("steps" if train else "no step done"),
        "train_minutes": stop[-1].get("train_minutes") if stop else None,
        "checkpoint": json.loads(latest.read_text())["weights"] if latest.is_file() else None,
        "last_train": train[-1] if train else None,
        # the final validation's AR; None when it did not run to the end (cut by the script's time limit)
        "ar": final.get("ar"),
        "validation": final or None,
        **extra,
    }


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    extra = dict(item.split("=", 1) for item in argv[2:])
    summary = summarise(Path(argv[0]), extra)
    Path(argv[1]).write_text(json.dumps(summary, indent=1) + "\n")
    last = summary["last_train"] or {}
    print(f"burst: {summary['steps']} steps (stopped by {summary['stopped_by']}), last loss {last.get('loss')}, "
          f"validation AR {summary['ar']}, checkpoint {summary['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
