"""mlops.yaml: the pushed repository's settings, their defaults, and the messages for what cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.errors import SourceError
from mlops.project import Project, read_project


def _repo(root: Path, config: str | None, *files: str) -> Path:
    if config is not None:
        (root / "mlops.yaml").write_text(config)
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x = 1\n")
    return root


def test_without_mlops_yaml_every_setting_has_its_default(tmp_path: Path) -> None:
    assert read_project(_repo(tmp_path, None, "train.py")) == Project()
    assert Project().entry_points == ()


def test_entry_points_as_written(tmp_path: Path) -> None:
    root = _repo(tmp_path, "entry_points: [sub/b.py, a.py]\n", "a.py", "sub/b.py")
    assert read_project(root).entry_points == (Path("sub/b.py"), Path("a.py"))


def test_one_entry_point_alone_is_a_list_of_one(tmp_path: Path) -> None:
    assert read_project(_repo(tmp_path, "entry_points: a.py\n", "a.py")).entry_points == (Path("a.py"),)


@pytest.mark.parametrize("config", ["entry_points: []\n", "entry_points: {a: 1}\n", "entry_points: [1, 2]\n"])
def test_entry_points_must_be_a_list_of_paths(tmp_path: Path, config: str) -> None:
    with pytest.raises(SourceError) as e:
        read_project(_repo(tmp_path, config, "a.py"))
    assert str(e.value) == "mlops.yaml: 'entry_points' must be a list of file paths"


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("- a.py\n", "mlops.yaml: must be a mapping of settings"),
        (
            "other: 1\n",
            "mlops.yaml: unknown setting 'other' (known: data, early_stop, entry_points, env, inputs, install",
        ),
        ("inputs: [3, {a: 1}]\n", "mlops.yaml: 'inputs' item 2 must be a number or a line of text"),
        ("inputs: [true]\n", "mlops.yaml: 'inputs' item 1 must be a number or a line of text"),
    ],
)
def test_a_setting_that_cannot_work_is_named(tmp_path: Path, config: str, says: str) -> None:
    with pytest.raises(SourceError) as e:
        read_project(_repo(tmp_path, config, "a.py"))
    assert str(e.value).startswith(says)


def test_an_mlops_yaml_may_give_only_the_answers_to_the_prompts(tmp_path: Path) -> None:
    project = read_project(_repo(tmp_path, "inputs: [3, 32, 0.01, relu]\n", "a.py"))
    assert project.entry_points == () and project.inputs == (3, 32, 0.01, "relu")
    (tmp_path / "empty").mkdir()
    assert read_project(_repo(tmp_path / "empty", "", "a.py")).inputs == ()


def test_a_missing_entry_point_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as e:
        read_project(_repo(tmp_path, "entry_points:\n  - a.py\n  - gone.py\n", "a.py"))
    assert str(e.value) == "mlops.yaml: entry point 'gone.py' does not exist"


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as e:
        read_project(_repo(tmp_path, "entry_points: [a.py\nfoo: : :\n", "a.py"))
    assert str(e.value) == "mlops.yaml:2: not valid YAML"


def test_env_gives_the_training_constants_never_the_callers_variables(tmp_path: Path) -> None:
    config = "entry_points: [a.py]\nenv: {TF_ENABLE_ONEDNN_OPTS: 0, WANDB_MODE: offline, FAST: true}\n"
    env = read_project(_repo(tmp_path, config, "a.py")).env
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "0", "WANDB_MODE": "offline", "FAST": "true"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("[A, B]", "'env' must map variable names to plain values"),
        ("{A: {from: MLOPS_SMTP_PASSWORD}}", "'env' must map variable names to plain values"),
        ("{PATH: /evil}", "PATH is set by the sandbox"),
        ("{LD_PRELOAD: /x.so}", "LD_PRELOAD is set by the sandbox"),
        ("{MLOPS_SEED: 1}", "MLOPS_SEED is mlops's own"),
        ("{'not a name': 1}", "'not a name' is not an environment variable name"),
    ],
)
def test_env_that_cannot_work_names_the_setting(tmp_path: Path, env: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        read_project(_repo(tmp_path, f"entry_points: [a.py]\nenv: {env}\n", "a.py"))


@pytest.mark.parametrize(
    ("config", "trial_0", "trial_1"),
    [(None, False, True), ("early_stop: all\n", True, True), ("early_stop: none\n", False, False)],
)
def test_early_stop_says_which_trials_may_be_stopped_early(
    tmp_path: Path, config: str | None, trial_0: bool, trial_1: bool
) -> None:
    early = read_project(_repo(tmp_path, config, "a.py")).early_stop
    assert (early.applies_to(0), early.applies_to(1)) == (trial_0, trial_1)


def test_an_unknown_early_stop_is_named_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as e:
        read_project(_repo(tmp_path, "early_stop: yes\n", "a.py"))
    assert str(e.value) == "mlops.yaml: 'early_stop' must be one of tuning, all, none but got True"
