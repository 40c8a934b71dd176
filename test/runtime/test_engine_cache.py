"""The TensorRT engine cache on the CPU: keys change with every component, foreign entries are rejected."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import pytest

from novel_pose_ros.runtime.engine_cache import EngineCache, EngineKey

KEY = EngineKey(onnx_sha256="a" * 64, tensorrt_version="10.16.1.11", gpu_name="NVIDIA H100 80GB HBM3",
                compute_capability="9.0", precision="fp16", profile=(1, 32, 32))
# one changed value per component: what an engine built elsewhere would carry
CHANGED = {
    "onnx_sha256": "b" * 64,
    "tensorrt_version": "11.4.0.106",
    "gpu_name": "NVIDIA GeForce RTX 4090",
    "compute_capability": "8.9",
    "precision": "fp32",
    "profile": (1, 16, 16),
}
GRAPH = "picopose_small_backbone"
ENGINE = b"serialized engine bytes"


@pytest.fixture
def cache(tmp_path) -> EngineCache:
    return EngineCache(tmp_path / "engines")


def test_every_component_is_covered():
    assert set(CHANGED) == {f.name for f in dataclasses.fields(EngineKey)}


@pytest.mark.parametrize("component", sorted(CHANGED))
def test_the_digest_changes_when_any_component_changes(component):
    other = dataclasses.replace(KEY, **{component: CHANGED[component]})
    assert other.digest() != KEY.digest()


def test_the_digest_is_stable():
    again = EngineKey.from_dict(json.loads(json.dumps(KEY.to_dict())))
    assert again == KEY and again.digest() == KEY.digest()
    assert KEY.digest() == dataclasses.replace(KEY, profile=[1, 32, 32]).digest()  # list or tuple: same key


@pytest.mark.parametrize("bad", [{"precision": "int8"}, {"profile": (0, 1, 1)}, {"profile": (1, 8, 4)},
                                 {"gpu_name": ""}, {"profile": (1, 2)}])
def test_invalid_keys_are_refused(bad):
    with pytest.raises(ValueError, match="EngineKey"):
        dataclasses.replace(KEY, **bad)


def test_a_stored_engine_is_found_with_the_same_key(cache):
    path = cache.store(GRAPH, KEY, ENGINE)
    assert path.name == f"{GRAPH}-{KEY.digest()[:16]}.engine"
    assert cache.lookup(GRAPH, KEY) == path and path.read_bytes() == ENGINE
    assert json.loads(path.with_suffix(".json").read_text())["key"] == KEY.to_dict()
    assert not list(cache.root.glob("*.tmp")), "no temporary file left behind"


def test_an_empty_cache_finds_nothing(cache, caplog):
    assert cache.lookup(GRAPH, KEY) is None
    assert "no engine for" in caplog.text


@pytest.mark.parametrize("component", sorted(CHANGED))
def test_an_engine_built_for_another_key_is_not_used_and_the_log_says_why(cache, caplog, component):
    """An engine built on another GPU / TensorRT version / precision / profile (or from another ONNX)."""
    foreign = dataclasses.replace(KEY, **{component: CHANGED[component]})
    cache.store(GRAPH, foreign, ENGINE)
    with caplog.at_level(logging.INFO, logger="novel_pose_ros.runtime.engine_cache"):
        assert cache.lookup(GRAPH, KEY) is None
    lines = [r.getMessage() for r in caplog.records if "differs" in r.getMessage()]
    assert len(lines) == 1 and component in lines[0], caplog.text
    assert all(name not in lines[0] for name in CHANGED if name != component)


@pytest.mark.parametrize("component", sorted(CHANGED))
def test_a_foreign_engine_copied_under_the_wanted_name_is_rejected(cache, caplog, component):
    foreign = dataclasses.replace(KEY, **{component: CHANGED[component]})
    source = cache.store(GRAPH, foreign, ENGINE)
    wanted = cache.engine_path(GRAPH, KEY)
    shutil.copy(source, wanted)
    shutil.copy(source.with_suffix(".json"), wanted.with_suffix(".json"))
    assert cache.lookup(GRAPH, KEY) is None
    rejected = [r.getMessage() for r in caplog.records if "rejecting" in r.getMessage()]
    assert len(rejected) == 1 and component in rejected[0] and wanted.name in rejected[0]
    if component == "tensorrt_version":
        assert "tensorrt_version 11.4.0.106 != 10.16.1.11" in rejected[0]


def test_an_engine_whose_bytes_were_replaced_is_rejected(cache, caplog):
    path = cache.store(GRAPH, KEY, ENGINE)
    path.write_bytes(b"another engine")
    assert cache.lookup(GRAPH, KEY) is None
    assert "do not match the sha256" in caplog.text


@pytest.mark.parametrize("sidecar", [None, "not json {", "[]", '{"format": 1, "key": {"precision": "fp16"}}',
                                     '{"format": 99}'])
def test_a_missing_or_corrupt_sidecar_is_rejected(cache, caplog, sidecar):
    path = cache.store(GRAPH, KEY, ENGINE)
    if sidecar is None:
        path.with_suffix(".json").unlink()
    else:
        path.with_suffix(".json").write_text(sidecar)
    assert cache.lookup(GRAPH, KEY) is None
    assert f"rejecting {path.name}" in caplog.text and "sidecar" in caplog.text


def test_store_replaces_an_entry_atomically(cache):
    cache.store(GRAPH, KEY, b"old")
    path = cache.store(GRAPH, KEY, ENGINE)
    assert cache.lookup(GRAPH, KEY) == path and path.read_bytes() == ENGINE


def test_timing_caches_are_per_tensorrt_version_and_gpu(cache):
    base = cache.timing_cache_path("10.16.1.11", "NVIDIA H100", "9.0")
    assert base.parent == cache.root
    assert base == cache.timing_cache_path("10.16.1.11", "NVIDIA H100", "9.0")
    others = {cache.timing_cache_path("11.4.0.106", "NVIDIA H100", "9.0"),
              cache.timing_cache_path("10.16.1.11", "NVIDIA L4", "9.0"),
              cache.timing_cache_path("10.16.1.11", "NVIDIA H100", "8.9")}
    assert base not in others and len(others) == 3


def test_the_default_folder_is_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NOVEL_POSE_CACHE", str(tmp_path))
    assert EngineCache().root == tmp_path / "engines"
