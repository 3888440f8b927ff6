"""The whole chain through the ``mlops`` command, on real git repositories and real training.

Bad input each gets one clear line, a non-zero exit where the run cannot go on, and a ledger that keeps
everything recorded before.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.model_checks import assert_model_gives_its_metric
from tests.support.processes import run_cli
from tests.support.repos import ROOT
from tests.support.scripts import KMEANS

MLP_THAT_RAISES_AS_PUSHED = """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, random_state=0)
    clf.fit(X_train, y_train)
    if clf.hidden_layer_sizes == (4,):
        raise RuntimeError("the validation set is empty")
    print("accuracy", clf.score(X_test, y_test))
"""


def history(ws, cwd):
    done = run_cli("history", "--json", "--workspace", str(ws), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def show(ws, cwd, run):
    done = run_cli("show", run, "--json", "--workspace", str(ws), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_kmeans_is_tuned_to_its_elbow_and_the_commit_is_not_trained_twice(repo_factory, tmp_path):
    repo = repo_factory({"segment.py": KMEANS})
    ws = tmp_path / "ws"
    done = run_cli("run", str(repo), "--runtime", "local", "--workspace", str(ws), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== job 1: pull" in done.stdout and "== job 5: results" in done.stdout
    (run,) = history(ws, tmp_path)
    assert run["kind"] == "kmeans" and run["reached"] is True and run["metric"] == "silhouette"
    assert run["best_metric"] >= 0.8 > run["baseline_metric"]
    details = show(ws, tmp_path, run["run"])
    assert "n_clusters" in json.dumps(details["trial_list"][1]["tweaks"])
    assert "n_clusters=4" in Path(details["best_diff"]).read_text().replace(" ", "")

    again = run_cli("run", str(repo), "--runtime", "local", "--workspace", str(ws), cwd=tmp_path)
    assert again.returncode == 0 and "was already tuned" in again.stdout
    assert len(history(ws, tmp_path)) == 1


@pytest.mark.slow
def test_a_script_that_raises_is_kept_failed_and_the_loop_goes_on(repo_factory, tmp_path):
    repo = repo_factory({"digits_mlp.py": MLP_THAT_RAISES_AS_PUSHED})
    ws = tmp_path / "ws"
    done = run_cli("run", str(repo), "--runtime", "local", "--workspace", str(ws), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = history(ws, tmp_path)
    trials = show(ws, tmp_path, run["run"])["trial_list"]
    assert trials[0]["status"] == "failed"
    assert trials[0]["error"].startswith("RuntimeError: the validation set is empty")
    assert (
        trials[0]["failure_class"] == "code" and trials[0]["restarts"] == 0
    )  # not trained again to see it fail
    assert trials[0]["error_file"] == "digits_mlp.py" and trials[0]["error_line"] == 11
    outcome = json.loads((ws / "runs" / run["run"] / "trials" / "0" / "outcome.json").read_text())
    assert "Traceback" in outcome["traceback"]
    assert trials[1]["status"] == "succeeded" and run["reached"] is True


def test_a_syntax_error_names_the_file_and_line_and_exits_non_zero(repo_factory, tmp_path):
    repo = repo_factory({"model.py": "import keras\nmodel = keras.Sequential(\nprint 'python 2'\n"})
    done = run_cli("run", str(repo), "--runtime", "local", "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert done.returncode != 0
    assert "model.py:3" in done.stderr or "model.py:2" in done.stderr, done.stderr
    (run,) = history(tmp_path / "ws", tmp_path)
    assert run["status"] == "failed"  # the attempt is on record


def test_a_repository_without_python_or_not_git_fails_clearly(repo_factory, tmp_path):
    repo = repo_factory({"README.md": "# notes\n"})
    done = run_cli("run", str(repo), "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert done.returncode != 0 and "no Python file" in done.stderr
    plain = tmp_path / "plain"
    plain.mkdir()
    done = run_cli("run", str(plain), "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert done.returncode != 0 and "not a git repository" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_script_with_no_metric_fails_the_run_with_the_reason(repo_factory, tmp_path):
    repo = repo_factory(
        {
            "train.py": "from sklearn.linear_model import LinearRegression\nm = LinearRegression()\n"
            "m.fit([[0], [1]], [0, 1])\nprint('trained, but measured nothing')\n"
        }
    )
    done = run_cli("run", str(repo), "--runtime", "local", "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert done.returncode != 0
    assert "produced no metric" in done.stderr
    (run,) = history(tmp_path / "ws", tmp_path)
    assert run["status"] == "failed"


@pytest.mark.slow
def test_time_and_memory_limits_end_the_trial_with_their_reason(repo_factory, tmp_path):
    repo = repo_factory(
        {
            "slow.py": "import time\nfrom sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\ntime.sleep(120)\n",
            # it asks for its memory first: sklearn's import alone can take 10 s on a busy machine
            "hungry.py": "blocks = [bytearray(64 * 2**20) for _ in range(40)]\n"
            "from sklearn.svm import SVC\nSVC().fit([[0], [1]], [0, 1])\n",
        }
    )
    ws = tmp_path / "ws"
    done = run_cli(
        "run",
        str(repo),
        "--runtime",
        "local",
        "--workspace",
        str(ws),
        "--timeout",
        "10",
        "--memory",
        "600",
        "--max-restarts",
        "1",
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode != 0
    runs = {r["script"]: show(ws, tmp_path, r["run"]) for r in history(ws, tmp_path)}
    slow, hungry = runs["slow.py"]["trial_list"][0], runs["hungry.py"]["trial_list"][0]
    assert slow["end_reason"] == "timeout" and "time limit" in slow["error"]
    assert hungry["end_reason"] == "oom" and "memory limit" in hungry["error"]


@pytest.mark.slow
def test_kill_9_of_mlops_run_mid_trial_resumes_without_training_anything_twice(repo_factory, tmp_path):
    repo = repo_factory(
        {
            "digits_mlp.py": MLP_THAT_RAISES_AS_PUSHED.replace(
                'raise RuntimeError("the validation set is empty")', "import time; time.sleep(1)"
            ).replace("max_iter=30", "max_iter=5")
        }
    )
    ws = tmp_path / "ws"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [
        sys.executable,
        "-m",
        "jobs.cli",
        "run",
        str(repo),
        "--runtime",
        "local",
        "--workspace",
        str(ws),
        "--target",
        "0.99",
        "--max-trials",
        "3",
    ]
    first = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    db = ws / "ledger.db"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until trial 1 is training
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    rows = conn.execute(
                        "SELECT number FROM trials WHERE status = 'running' AND number = 1"
                    ).fetchall()
            except sqlite3.OperationalError:  # made, its tables not yet
                rows = []
            if rows:
                break
        time.sleep(0.2)
    else:
        pytest.fail("trial 1 never started")
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = history(ws, tmp_path)
    assert run["trials"] == 3 and run["status"] == "exhausted"
    details = show(ws, tmp_path, run["run"])
    assert [t["status"] for t in details["trial_list"]] == ["succeeded"] * 3
    with sqlite3.connect(db) as conn:
        starts = conn.execute(
            "SELECT trial, COUNT(*) FROM events WHERE kind = 'trial-started' GROUP BY trial"
        ).fetchall()
        resumed = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'run-resumed'").fetchone()[0]
    assert dict(starts) == {0: 1, 1: 1, 2: 1}  # trial 1 was re-attached or restarted, never started anew
    assert resumed == 1


@pytest.mark.slow
def test_the_example_models_all_reach_the_target(tmp_path):
    ws = tmp_path / "ws"
    done = run_cli(
        "run", str(ROOT / "models"), "--runtime", "local", "--workspace", str(ws), cwd=tmp_path, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    runs = {r["script"]: r for r in history(ws, tmp_path)}
    assert set(runs) == {"cnn.py", "ann.py", "kmeans.py"}
    for script, run in runs.items():
        assert run["reached"] is True, (script, run)
        assert run["baseline_metric"] < 0.8, f"{script} should start below the target to show the loop"
        # what it gives back: a model that loads in a fresh process and measures what was reported
        assert_model_gives_its_metric(run)
    assert runs["cnn.py"]["kind"] == "cnn" and runs["ann.py"]["kind"] == "ann"


@pytest.mark.slow
def test_parallel_trials_run_at_once_and_are_all_recorded(repo_factory, tmp_path):
    repo = repo_factory(
        {"segment.py": KMEANS.replace("centers=4", "centers=6").replace("cluster_std=0.5", "cluster_std=1.5")}
    )
    ws = tmp_path / "ws"
    done = run_cli(
        "run",
        str(repo),
        "--runtime",
        "local",
        "--workspace",
        str(ws),
        "--parallel",
        "2",
        "--max-trials",
        "3",
        "--target",
        "0.99",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = history(ws, tmp_path)
    trials = show(ws, tmp_path, run["run"])["trial_list"]
    assert [t["status"] for t in trials] == ["succeeded"] * 3
    ks = [t["tweaks"][0][1]["value"] for t in trials[1:]]
    assert len(set(ks)) == 2  # the two trials of one batch proposed different k
    with sqlite3.connect(ws / "ledger.db") as conn:
        rows = conn.execute(
            "SELECT trial, kind, at FROM events WHERE trial IN (1, 2) AND kind IN "
            "('trial-started', 'trial-succeeded') ORDER BY at"
        ).fetchall()
    order = [(trial, kind) for trial, kind, _ in rows]
    assert order.index((2, "trial-started")) < order.index((1, "trial-succeeded"))  # overlapping


def test_a_bad_setting_exits_2_naming_it_before_anything_is_pulled(repo_factory, tmp_path):
    repo = repo_factory({"segments.py": KMEANS})
    for args, env, said in [
        (["--strategy", "tpee"], {}, "invalid choice: 'tpee' (choose from 'tpe', 'ladder')"),
        ([], {"MLOPS_STRATEGY": "tpee"}, "strategy must be one of tpe, ladder but got 'tpee'"),
    ]:
        done = run_cli("run", str(repo), "--workspace", str(tmp_path / "ws"), *args, cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stderr
        assert said in done.stderr
        assert not (tmp_path / "ws" / "repos").exists()  # nothing was pulled
