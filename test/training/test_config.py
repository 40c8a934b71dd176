"""Training configuration: the shipped YAML files load and validate; mistakes are named."""
import pytest

from helpers import REPO_ROOT
from novel_pose_ros.training.config import load_train_config, train_config_from_dict


@pytest.mark.parametrize("name", ["train_small.yaml", "train_tiny.yaml"])
def test_shipped_configs_load(name):
    config = load_train_config(REPO_ROOT / "configs" / name)
    assert config.network_config().name == "small_cnn"
    assert config.loss.infonce_tau == 0.1 and config.loss.flow_weight == 0.1 and config.loss.total_clamp == 100
    assert config.data.template_level == 1 and config.data.nearest_templates == 5
    assert config.data.synth_settings().objects_per_scene[0] >= 1
    assert config.to_dict()["run"]["batch_size"] == config.run.batch_size


def test_overrides_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("network: small\nrun: {steps: 10}\ndata: {scene: {objects_per_scene: [2, 3]}}\n")
    config = load_train_config(path, {"run": {"device": "cpu", "batch_size": 2}})
    assert config.run.steps == 10 and config.run.batch_size == 2 and config.data.synth_settings().objects_per_scene == (2, 3)
    with pytest.raises(ValueError, match="unknown keys.*'stpes'"):
        train_config_from_dict({"run": {"stpes": 3}})
    with pytest.raises(ValueError, match="min_visib_fract"):
        train_config_from_dict({"data": {"min_visib_fract": 2.0}})
    with pytest.raises(ValueError, match="data.scene"):
        train_config_from_dict({"data": {"scene": {"no_such_setting": 1}}})
    with pytest.raises(ValueError, match="unknown PicoPose config"):
        train_config_from_dict({"network": "nope"})
