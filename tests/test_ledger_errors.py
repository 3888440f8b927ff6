"""A ledger that cannot be used says so in one line and exits 2; a read-only workspace can still be read;
settings that cannot work are refused with where they came from; two runs on one workspace take turns."""

from __future__ import annotations

import shutil
import sqlite3
import threading

import pytest

from mlops.config import load_settings
from mlops.errors import ConfigError, LedgerUnavailable
from mlops.ledger import Ledger
from mlops.pull import pull
from tests.support.processes import run_cli
from tests.support.repos import make_repo


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_corrupt_ledger_is_one_line_and_exit_2(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "ledger.db").write_bytes(b"this is not a SQLite file at all, just text" * 10)
    for command in (["history"], ["show", "1-x"], ["run", str(tmp_path / "nowhere"), "--runtime", "local"]):
        done = run_cli(*command, "--workspace", str(workspace), cwd=tmp_path)
        assert done.returncode == 2 and "is corrupt" in one_line(done.stderr), done.stderr


def test_a_locked_ledger_says_who_to_ask(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        ledger = Ledger(path, timeout_s=0.2)
        with pytest.raises(LedgerUnavailable, match=r"is locked by another process \(waited 0.2 s\)"):
            ledger.event(None, None, "note", "a write that must wait for the lock")
    finally:
        holder.execute("ROLLBACK")


def test_a_read_only_workspace_is_read_by_history_and_refused_by_run_in_one_line(tmp_path):
    workspace = tmp_path / "ws"
    repo = make_repo(tmp_path / "repo", {"train.py": "print(1)\n"})
    ledger = Ledger(workspace / "ledger.db")
    pull(str(repo), None, workspace, ledger)  # something in the ledger
    ledger.close()
    bwrap = shutil.which("bwrap")
    assert bwrap, "bubblewrap is installed by make test"
    # The workspace mounted read-only (root ignores file modes, a read-only mount it cannot).
    readonly = [bwrap, "--dev-bind", "/", "/", "--ro-bind", str(workspace), str(workspace), "--"]
    history = run_cli("history", "--json", "--workspace", str(workspace), cwd=tmp_path, wrap=readonly)
    assert history.returncode == 0 and history.stderr == "", history.stderr
    run = run_cli(
        "run", str(repo), "--workspace", str(workspace), "--runtime", "local", cwd=tmp_path, wrap=readonly
    )
    assert run.returncode == 2 and "read-only" in one_line(run.stderr), run.stderr


def test_a_settings_file_that_is_not_utf8_exits_2_naming_it(tmp_path):
    (tmp_path / "mlops.toml").write_bytes(b'target = 0.9\nstrategy = "\xff\xfe"\n')
    done = run_cli("history", cwd=tmp_path)
    assert done.returncode == 2 and "mlops.toml:2: not UTF-8 text (byte 25 is 0xff)" in one_line(done.stderr)


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"cpus": 0.0}, {}, "--cpus: cpus must be positive but got 0"),
        ({"timeout_s": float("inf")}, {}, "--timeout: timeout must be positive but got inf"),
        ({"cpus": float("nan")}, {}, "cpus must be positive but got nan"),
        ({"cpus": 0.001}, {}, "cpus must be at least 0.01"),
        ({}, {"MLOPS_MAX_MINUTES": "0"}, "MLOPS_MAX_MINUTES: max_minutes must be positive but got 0"),
        ({}, {"MLOPS_PARALLEL": "0"}, "MLOPS_PARALLEL: parallel must be at least 1"),
        ({"unsandboxed": True, "runtime": "docker"}, {}, "unsandboxed applies to the local runtime only"),
        ({}, {"MLOPS_TRIAL_ENV": "OK_NAME,PATH"}, "PATH is set by the sandbox"),
        ({}, {"MLOPS_TRIAL_ENV": "not a name"}, "'not a name' is not an environment variable name"),
    ],
)
def test_every_numeric_setting_is_range_checked_and_says_where_it_came_from(flags, env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(flags, env=env)


def test_lists_come_from_the_file_or_comma_separated_from_the_environment(tmp_path):
    config = tmp_path / "mlops.toml"
    config.write_text('repositories = ["https://github.com/a/b.git", "a/c"]\ntrial_env = ["WANDB_MODE"]\n')
    settings = load_settings({}, env={"MLOPS_TRIAL_ENV": "A, B"}, config_file=config)
    assert settings.repositories == ("https://github.com/a/b.git", "a/c") and settings.trial_env == ("A", "B")


def test_two_pulls_into_one_workspace_at_once_take_turns(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": "print(1)\n"})
    workspace = tmp_path / "ws"
    errors: list[BaseException] = []

    def one() -> None:
        try:
            pull(f"file://{repo}", "main", workspace, Ledger(workspace / "ledger.db"))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(list((workspace / "checkouts").glob("*/*"))) == 1
