"""Reading the package's YAML files (objects, training configs) with one clear error per problem."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document at `path` ({} when empty). FileNotFoundError / ValueError name `what` and the path."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: not found")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {path}: invalid YAML ({exc})") from exc
