"""`novel-pose bench` (the estimator benchmark) end to end: real renderer, real ONNX Runtime sessions,
untrained small weights. It checks the report's shape and internal consistency, never the speed."""
import json

import pytest

from helpers import toy_block_objects_yaml
from novel_pose_ros.benchmarks.estimator_bench import REPORTED, STAGE_SOURCES
from novel_pose_ros.cli import build_parser, main

ENVIRONMENT_FIELDS = {
    "backend": str, "device": str, "precision": str, "max_batch": int, "pipeline": str, "network": str, "weights_id": str, "renderer": str,
    "cpu_model": str, "cpu_count": int, "versions": dict,
}
RESULT_FIELDS = {
    "objects_per_frame": int, "frames": int, "detections_per_frame": list, "answered_per_frame": list,
    "failures": dict, "latency_s": dict, "hz": float, "peak_rss_mib": float,
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One small run shared by the checks: K = 1 and 2, one warm-up and one timed frame each.

    A one-object library keeps the cold onboarding (the bulk of the run on a CPU) short, and makes
    K = 2 show the same object twice, as separate instances.
    """
    folder = tmp_path_factory.mktemp("bench")
    objects = toy_block_objects_yaml(folder)
    out = folder / "out.json"
    code = main(["bench", "--objects-per-frame", "1", "2", "--frames", "1", "--warmup", "1", "--objects", str(objects),
                 "--network", "small", "--backend", "onnxruntime", "--precision", "fp32", "--max-batch", "4",
                 "--json", str(out)])
    return code, json.loads(out.read_text()) if out.is_file() else None


def test_bench_without_a_sub_command_is_the_estimator_benchmark():
    parser = build_parser()
    assert parser.parse_args(["bench", "--json", "x.json"]).handler.__name__ == "run_estimator_bench"
    assert parser.parse_args(["bench", "templates", "--repeat", "1"]).handler.__name__ == "run_templates_bench"


def test_the_report_has_every_field_for_each_load(bench_run):
    code, report = bench_run
    assert code == 0 and report["benchmark"] == "estimator"
    env = report["environment"]
    for name, kind in ENVIRONMENT_FIELDS.items():
        assert isinstance(env[name], kind), name
    assert (env["backend"], env["device"], env["precision"], env["network"]) == ("onnxruntime", "cpu", "fp32", "small")
    assert (env["pipeline"], env["max_batch"]) == ("picopose", 4)
    assert env["weights_id"].startswith("untrained-small")
    assert env["gl_renderer"] is None or isinstance(env["gl_renderer"], str)
    assert env["versions"]["onnxruntime"] and env["versions"]["torch"]
    assert set(report["stages"]) == set(STAGE_SOURCES)
    assert list(report["onboarding_s"]) == ["toy_block"] and report["onboarding_s"]["toy_block"] > 0
    assert report["backend_setup_s"] > 0
    assert set(report["setup_rss_mib"]) == {"frames_rendered", "backend_ready", "objects_onboarded"}

    assert [r["objects_per_frame"] for r in report["results"]] == [1, 2]
    for result in report["results"]:
        k = result["objects_per_frame"]
        for name, kind in RESULT_FIELDS.items():
            assert isinstance(result[name], kind), name
        assert result["rss_mib"] is None or result["rss_mib"] > 0
        assert result["gpu_peak_mib"] is None  # CPU run
        assert result["frames"] == 1
        assert result["detections_per_frame"] == [k] and result["answered_per_frame"] == [k]
        latency = result["latency_s"]
        assert set(latency) == set(REPORTED)
        for stage in REPORTED:
            assert 0.0 <= latency[stage]["median_s"] <= latency[stage]["p90_s"]
            assert latency["total"]["median_s"] >= latency[stage]["median_s"]
            assert latency["total"]["p90_s"] >= latency[stage]["p90_s"]
        assert result["hz"] == pytest.approx(1.0 / latency["total"]["median_s"])


def test_a_bad_argument_is_refused_with_a_message(capsys):
    assert main(["bench", "--frames", "0"]) == 2
    assert "frames must be ≥ 1, got 0" in capsys.readouterr().err
    assert main(["bench", "--objects-per-frame", "0", "3", "--warmup", "-1"]) == 2
    err = capsys.readouterr().err
    assert "objects per frame must be 1 to 64" in err and "warmup must be ≥ 0" in err


def test_the_refine_pipeline_gets_its_own_column(tmp_path, capsys):
    objects = toy_block_objects_yaml(tmp_path)
    out = tmp_path / "out.json"
    code = main(["bench", "--objects-per-frame", "1", "--frames", "1", "--warmup", "1", "--objects", str(objects),
                 "--network", "small", "--backend", "onnxruntime", "--pipeline", "picopose+refine", "--json", str(out)])
    assert code == 0 and "refine ms" in capsys.readouterr().out
    [result] = json.loads(out.read_text())["results"]
    assert set(result["latency_s"]) == set(REPORTED) | {"refine"}
    assert 0.0 < result["latency_s"]["refine"]["median_s"] <= result["latency_s"]["total"]["median_s"]


def test_the_coop_pipeline_with_selection_reports_its_own_stages(tmp_path, capsys, tiny_coarse_checkpoint,
                                                                  tiny_selector_checkpoint):
    objects = toy_block_objects_yaml(tmp_path)
    out = tmp_path / "out.json"
    code = main(["bench", "--objects-per-frame", "1", "--frames", "1", "--warmup", "0", "--objects", str(objects),
                 "--backend", "onnxruntime", "--pipeline", "coop+refine+select", "--coarse-weights",
                 str(tiny_coarse_checkpoint), "--selector-weights", str(tiny_selector_checkpoint), "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and all(f"{s} ms" in printed for s in ("encoder", "match", "refine", "select"))
    [result] = json.loads(out.read_text())["results"]
    assert {"encoder", "match", "pnp", "refine", "select", "total"} <= set(result["latency_s"])
    assert "backbone" not in result["latency_s"]
