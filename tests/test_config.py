"""Settings: file, then environment, then flags; bad values are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.config import load_settings
from mlops.envsafe import MASK
from mlops.errors import ConfigError


def test_flags_beat_environment_beat_file(tmp_path):
    config = tmp_path / "mlops.toml"
    config.write_text('[mlops]\ntarget = 0.7\nmax-trials = 9\nstrategy = "ladder"\n')
    env = {"MLOPS_TARGET": "0.75", "MLOPS_WORKSPACE": str(tmp_path / "ws")}
    settings = load_settings({"target": 0.9}, env=env, config_file=config)
    assert settings.target == 0.9 and settings.max_trials == 9 and settings.strategy == "ladder"
    assert settings.workspace == Path(tmp_path / "ws")
    assert load_settings({}, env=env, config_file=config).target == 0.75


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"target": 80}, "target must be a fraction between 0 and 1 .* but got 80"),
        ({"max_trials": 0}, "max_trials must be at least 1 but got 0"),
        ({"runtime": "k8s"}, "runtime must be one of auto, local, docker, ray but got 'k8s'"),
        ({"memory_mb": 10}, "memory must be at least 64 MB but got 10"),
        ({"strategy": "tpee"}, "strategy must be one of tpe, ladder but got 'tpee'"),
        ({"cluster_metric": "purity"}, "cluster_metric must be one of silhouette, ari but got 'purity'"),
        ({"cpus": 0}, "cpus must be positive but got 0"),
        ({"cpus": -1}, "cpus must be positive but got -1"),
        ({"max_minutes": 0}, "max_minutes must be positive but got 0"),
        ({"keep_models": "latest"}, "keep_models must be one of best, all but got 'latest'"),
        ({"keep_checkpoints": "maybe"}, "keep_checkpoints must be of type bool but got 'maybe'"),
        ({"patience": -1}, "patience must be at least 0 but got -1"),
    ],
)
def test_bad_values_are_named(flags, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, env={})


def test_unknown_or_malformed_settings_in_the_file_name_the_file(tmp_path):
    config = tmp_path / "mlops.toml"
    config.write_text("targte = 0.9\n")
    with pytest.raises(ConfigError, match="unknown setting 'targte'"):
        load_settings({}, env={}, config_file=config)
    config.write_text("target = \n")
    with pytest.raises(ConfigError, match=str(config)):
        load_settings({}, env={}, config_file=config)
    with pytest.raises(ConfigError, match="MLOPS_MAX_TRIALS|max_trials must be of type"):
        load_settings({}, env={"MLOPS_MAX_TRIALS": "many"})


def test_the_workspace_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings({}, env={}).workspace == tmp_path / ".mlops"


def test_a_bad_strategy_in_the_file_or_the_environment_names_where_it_came_from(tmp_path):
    config = tmp_path / "mlops.toml"
    config.write_text('strategy = "tpee"\n')
    with pytest.raises(ConfigError, match=f"{config}: strategy must be one of tpe, ladder but got 'tpee'"):
        load_settings({}, env={}, config_file=config)
    with pytest.raises(ConfigError, match="MLOPS_STRATEGY: strategy must be one of tpe, ladder"):
        load_settings({}, env={"MLOPS_STRATEGY": "tpee"})


def test_models_settings_come_from_the_file_too(tmp_path):
    config = tmp_path / "mlops.toml"
    config.write_text('keep_models = "all"\nkeep_checkpoints = true\n')
    settings = load_settings({}, env={}, config_file=config)
    assert settings.keep_models == "all" and settings.keep_checkpoints is True
    assert load_settings({}, env={}).keep_models == "best"  # the default: only the best model is kept


def test_early_stopping_is_on_by_default_and_set_from_the_file_the_environment_or_flags(tmp_path):
    config = tmp_path / "mlops.toml"
    config.write_text("patience = 5\nstop_at_target = false\n")
    assert load_settings({}, env={}).patience == 3 and load_settings({}, env={}).stop_at_target is True
    settings = load_settings({}, env={}, config_file=config)
    assert settings.patience == 5 and settings.stop_at_target is False
    settings = load_settings({"patience": 0}, env={"MLOPS_STOP_AT_TARGET": "1"}, config_file=config)
    assert settings.patience == 0 and settings.stop_at_target is True


def test_the_environment_is_read_once_with_the_settings_and_never_written_out(tmp_path):
    env = {
        "MLFLOW_TRACKING_URI": "sqlite:///m.db",
        "MLOPS_WEBHOOK_SECRET": "whsec-value-1234",
        "DOCKER_HOST": "tcp://10.0.0.9:2376",
        "GITHUB_TOKEN": "ghp-planted-token",
    }
    settings = load_settings(env=env, config_file=tmp_path / "none.toml")
    seen = settings.environment
    assert seen.mlflow_tracking_uri == "sqlite:///m.db" and seen.webhook_secret == "whsec-value-1234"
    assert seen.docker_host == "tcp://10.0.0.9:2376"
    assert seen.redactor("pushed with ghp-planted-token") == f"pushed with {MASK}"
    assert seen.child(GIT_TERMINAL_PROMPT="0")["GITHUB_TOKEN"] == "ghp-planted-token"
    env["GITHUB_TOKEN"] = "changed later"  # a snapshot: what the caller changes afterwards is not seen
    assert seen.variables["GITHUB_TOKEN"] == "ghp-planted-token"
    written = json.dumps(settings.to_json()) + repr(settings) + repr(seen)
    assert "environment" not in settings.to_json()
    assert "ghp-planted" not in written and "whsec" not in written
