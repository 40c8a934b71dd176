"""Dict round trip of the Co-op network configurations (YAML, export sidecars' config_values, checkpoints)."""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any


class DictConfig:
    """Mixin for frozen config dataclasses: to_dict, and from_dict that names unknown keys and turns lists
    (as YAML and JSON give them) back into tuples; validation stays in each class's __post_init__."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
