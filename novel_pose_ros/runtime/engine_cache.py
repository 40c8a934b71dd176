"""A folder of TensorRT engines that never hands out an engine built for something else.

An engine is only valid for the ONNX graph, TensorRT version, GPU model (name and compute
capability), precision and batch profile it was built with. Each engine is stored as
`<graph>-<digest[:16]>.engine` next to a `.json` sidecar holding its full `EngineKey` and the
sha256 of the engine bytes. `lookup(key)` returns a path only when the sidecar's key equals the
wanted key exactly and the bytes match; otherwise it returns None and logs one line naming the
components that differ, so the caller rebuilds and the log says why. Pure Python: no TensorRT here.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from novel_pose_ros.hashing import file_sha256

LOGGER = logging.getLogger(__name__)
PRECISIONS = ("fp16", "fp32")
SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on.

    onnx_sha256: sha256 of the ONNX file; tensorrt_version: e.g. "10.16.1.11"; gpu_name: e.g.
    "NVIDIA H100 80GB HBM3"; compute_capability: "major.minor", e.g. "9.0"; precision: "fp16" | "fp32";
    profile: (min, opt, max) of the dynamic batch axis B.
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: tuple[int, int, int]

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"EngineKey: precision must be one of {PRECISIONS}, got '{self.precision}'")
        profile = tuple(int(b) for b in self.profile)
        if len(profile) != 3 or not 1 <= profile[0] <= profile[1] <= profile[2]:
            raise ValueError(f"EngineKey: profile must be (min, opt, max) with 1 ≤ min ≤ opt ≤ max, got {self.profile}")
        object.__setattr__(self, "profile", profile)
        for name in ("onnx_sha256", "tensorrt_version", "gpu_name", "compute_capability"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"EngineKey: {name} must be a non-empty string, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["profile"] = list(self.profile)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "EngineKey":
        names = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or set(values) != names:
            raise ValueError(f"not an engine key (want the fields {sorted(names)})")
        return cls(**{**values, "profile": tuple(values["profile"])})

    def digest(self) -> str:
        """sha256 of the canonical JSON of the key (sorted keys, no spaces): stable across runs and machines."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def differences(self, other: "EngineKey") -> list[str]:
        """'component stored != wanted' for each component where `other` (the stored key) differs from self."""
        out = []
        for name in (f.name for f in fields(self)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                show = (lambda v: "x".join(map(str, v))) if name == "profile" else str
                out.append(f"{name} {show(theirs)} != {show(mine)}")
        return out


def default_engine_dir() -> Path:
    from novel_pose_ros.paths import cache_dir

    return cache_dir() / "engines"


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EngineCache:
    """Engines under `root` (default: <user cache>/engines), keyed by `EngineKey`."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_engine_dir()

    def engine_path(self, graph: str, key: EngineKey) -> Path:
        return self.root / f"{graph}-{key.digest()[:16]}.engine"

    def timing_cache_path(self, tensorrt_version: str, gpu_name: str, compute_capability: str) -> Path:
        """Timing cache shared by every build on this TensorRT version and GPU model."""
        ident = json.dumps([tensorrt_version, gpu_name, compute_capability], separators=(",", ":"))
        return self.root / f"timing-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.cache"

    def lookup(self, graph: str, key: EngineKey) -> Path | None:
        """The engine for exactly `key`, else None with one log line saying why."""
        path = self.engine_path(graph, key)
        if not path.is_file():
            nearest = self._nearest(graph, key)
            if nearest is None:
                LOGGER.info("engine cache: no engine for %s yet (%s)", graph, path.name)
            else:
                LOGGER.info("engine cache: no engine for %s with this key; the cached one differs: %s",
                            graph, ", ".join(key.differences(nearest)))
            return None
        stored, reason = self._read_sidecar(path)
        if stored is None:
            LOGGER.warning("engine cache: rejecting %s: %s", path.name, reason)
            return None
        if stored[0] != key:
            LOGGER.warning("engine cache: rejecting %s: it was built for another key (%s)",
                           path.name, ", ".join(key.differences(stored[0])))
            return None
        if file_sha256(path) != stored[1]:
            LOGGER.warning("engine cache: rejecting %s: engine bytes do not match the sha256 in its sidecar", path.name)
            return None
        return path

    def store(self, graph: str, key: EngineKey, engine_bytes: bytes) -> Path:
        """Write the engine, then its sidecar (both atomically); return the engine path."""
        path = self.engine_path(graph, key)
        data = bytes(engine_bytes)
        write_atomic(path, data)
        sidecar = {"format": SIDECAR_FORMAT, "graph": graph, "key": key.to_dict(), "digest": key.digest(),
                   "engine_sha256": hashlib.sha256(data).hexdigest(), "engine_bytes": len(data)}
        write_atomic(path.with_suffix(".json"), json.dumps(sidecar, indent=1).encode())
        return path

    def _read_sidecar(self, engine_path: Path) -> tuple[tuple[EngineKey, str] | None, str]:
        """((stored key, engine sha256), '') or (None, why the sidecar is unusable)."""
        sidecar_path = engine_path.with_suffix(".json")
        try:
            sidecar = json.loads(sidecar_path.read_text())
            if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
                return None, f"sidecar {sidecar_path.name} is not of format {SIDECAR_FORMAT}"
            return (EngineKey.from_dict(sidecar["key"]), str(sidecar["engine_sha256"])), ""
        except FileNotFoundError:
            return None, f"sidecar {sidecar_path.name} is missing"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"sidecar {sidecar_path.name} is unreadable ({exc})"

    def _nearest(self, graph: str, key: EngineKey) -> EngineKey | None:
        """The stored key of `graph` with the fewest differences from `key` (to explain a rebuild)."""
        best = None
        for sidecar_path in sorted(self.root.glob(f"{graph}-*.json")):
            stored, _ = self._read_sidecar(sidecar_path.with_suffix(".engine"))
            if stored is not None and (best is None or len(key.differences(stored[0])) < len(key.differences(best))):
                best = stored[0]
        return best
