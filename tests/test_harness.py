"""The harness runs real scripts, unchanged, and collects the right metric from what they did."""

from __future__ import annotations

import json
import textwrap

import pytest

from mlops_harness.metrics import normalize_accuracy
from mlops_harness.protocol import EVENTS_FILE, METRICS_FILE, EventKind, ExitCode, encode_event, read_events
from tests.support.processes import run_harness


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.93", 0.93),
        ("93", 0.93),
        ("93%", 0.93),
        ("accuracy: 93.5 %", 0.935),
        ("[0.21, 0.93]", 0.93),
        ('{"accuracy": 0.9}', 0.9),
        (0.5, 0.5),
        (87, 0.87),
        ("", None),
        ("n/a", None),
        (250, None),
        (-1, None),
    ],
)
def test_accuracies_as_people_write_them_are_normalized(raw, expected):
    value = normalize_accuracy(raw)
    assert value == pytest.approx(expected) if expected is not None else value is None


def read(out, name):
    return json.loads((out / name).read_text())


@pytest.mark.slow
def test_classifier_score_on_test_data_is_the_metric(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        X, y = load_iris(return_X_y=True)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=1)
        clf = LogisticRegression(max_iter=500).fit(X_tr, y_tr)
        print("train", clf.score(X_tr, y_tr))
        test = clf.score(X_te, y_te)
        open("my_result.txt", "w").write(str(test))
    """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    written = float((out / "work" / "my_result.txt").read_text())
    assert metrics["metric"] == "accuracy" and metrics["source"] == "score"
    assert metrics["value"] == pytest.approx(written)
    assert float((out / "accuracy.txt").read_text()) == pytest.approx(written, abs=1e-6)
    assert [o["source"] for o in metrics["observations"]] == ["score", "score"]  # not sklearn's inner calls


def test_a_script_that_raises_keeps_its_traceback_and_line(tmp_path):
    done, out = run_harness(tmp_path, "import math\nx = 1\nraise ValueError('bad data in column 3')\n")
    assert done.returncode == 1
    outcome = read(out, "outcome.json")
    assert outcome["status"] == "error"
    assert outcome["error"] == "ValueError: bad data in column 3"
    assert outcome["file"] == "train.py" and outcome["line"] == 3
    assert "Traceback" in outcome["traceback"]


def test_a_syntax_error_names_file_and_line(tmp_path):
    done, out = run_harness(tmp_path, "x = 1\nprint 'python 2'\n")
    assert done.returncode == 1
    outcome = read(out, "outcome.json")
    assert outcome["line"] == 2 and outcome["error"].startswith("SyntaxError")


def test_no_metric_is_a_clear_failure(tmp_path):
    done, out = run_harness(tmp_path, "print('hello, no model here')\n")
    assert done.returncode == 3
    assert "produced no metric" in read(out, "outcome.json")["error"]
    assert not (out / "accuracy.txt").exists()


def test_input_fails_at_once_instead_of_hanging(tmp_path):
    done, out = run_harness(tmp_path, "n = int(input('epochs? '))\n", timeout=60)
    assert done.returncode == 1
    assert "asked for input" in read(out, "outcome.json")["error"]


def test_an_accuracy_file_the_script_writes_is_read(tmp_path):
    done, out = run_harness(tmp_path, "open('accuracy.txt', 'w').write('Accuracy: 91.5%')\n")
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    assert metrics["value"] == pytest.approx(0.915) and metrics["source"] == "file:accuracy.txt"


@pytest.mark.slow
def test_jupyter_export_with_crlf_and_magics_runs(tmp_path):
    script = (
        "#!/usr/bin/env python\r\n# coding: utf-8\r\n\r\n# In[1]:\r\n\r\n\r\n"
        "get_ipython().run_line_magic('matplotlib', 'inline')\r\nimport matplotlib.pyplot as plt\r\n"
        "from sklearn.datasets import load_wine\r\nfrom sklearn.tree import DecisionTreeClassifier\r\n"
        "from sklearn.metrics import accuracy_score\r\n\r\n# In[2]:\r\n\r\n\r\n"
        "X, y = load_wine(return_X_y=True)\r\nclf = DecisionTreeClassifier(random_state=0).fit(X, y)\r\n"
        "plt.plot([1, 2]); plt.show()\r\nprint(accuracy_score(y, clf.predict(X)))\r\n"
    )
    done, out = run_harness(tmp_path, script)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    assert metrics["source"] == "accuracy_score" and metrics["value"] == pytest.approx(1.0)
    assert "ignored IPython magic %matplotlib inline" in done.stdout


@pytest.mark.slow
def test_local_modules_and_data_files_next_to_the_script_work(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        import csv
        from helpers import build
        rows = list(csv.reader(open("data.csv")))
        clf, X, y = build(rows)
        print(clf.score(X, y))
        """,
        extra_files={
            "helpers.py": """
                from sklearn.neighbors import KNeighborsClassifier
                def build(rows):
                    X = [[float(a), float(b)] for a, b, _ in rows]
                    y = [int(c) for _, _, c in rows]
                    return KNeighborsClassifier(n_neighbors=1).fit(X, y), X, y
            """,
            "data.csv": "0,0,0\n0,1,0\n5,5,1\n5,6,1\n",
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert read(out, "metrics.json")["value"] == 1.0


@pytest.mark.slow
def test_kmeans_gets_silhouette_curve_and_adjusted_rand(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.cluster import KMeans
        from sklearn.datasets import make_blobs
        X, y = make_blobs(n_samples=300, centers=3, cluster_std=0.5, random_state=0)
        KMeans(n_clusters=3, n_init=5, random_state=0).fit_predict(X)
    """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    assert metrics["metric"] == "silhouette" and metrics["value"] > 0.7
    km = metrics["kmeans"]
    assert km["n_clusters"] == 3 and km["curve"]["k"] == list(range(2, 11))
    assert km["curve"]["silhouette"][1] == pytest.approx(metrics["value"], abs=0.02)
    assert km["ari"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_keras_fit_history_validation_accuracy_and_checkpoints(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        import keras
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(X, y, epochs=3, validation_split=0.2, batch_size=64)
    """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    assert metrics["source"] == "val_accuracy"
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert metrics["value"] == pytest.approx(metrics["history"][-1]["val_accuracy"])
    assert "[mlops] epoch 3/3" in done.stdout
    assert any((out / "checkpoints" / "fit-0").iterdir())


def events(out):
    return read_events(out / EVENTS_FILE)


@pytest.mark.slow
def test_a_scikit_learn_run_records_its_metric_as_an_event(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_iris
        from sklearn.tree import DecisionTreeClassifier
        X, y = load_iris(return_X_y=True)
        print(DecisionTreeClassifier(random_state=0).fit(X, y).score(X, y))
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    metric = [e for e in events(out) if e.kind is EventKind.METRIC]
    assert len(metric) == 1
    assert metric[0].fields == {"metric": "accuracy", "value": 1.0, "source": "score"}
    finished = events(out)[-1]
    assert finished.kind is EventKind.FINISHED and finished.get("exit_code") == 0
    assert not (out / "history.jsonl").exists() and not (out / "resumed.jsonl").exists()


def test_a_restarted_harness_keeps_the_history_and_resumes_of_the_events_and_skips_a_cut_line(tmp_path):
    out = tmp_path / "trial"
    out.mkdir()
    earlier = [
        encode_event(EventKind.STARTED, script="train.py", pid=1),
        encode_event(EventKind.EPOCH, fit=0, epoch=1, epochs=3, logs={"accuracy": 0.5, "loss": 1.0}),
        encode_event(EventKind.EPOCH, fit=0, epoch=2, epochs=3, logs={"accuracy": 0.6, "loss": 0.8}),
        encode_event(EventKind.RESUMED, fit=0, epoch=1),
        encode_event(EventKind.EPOCH, fit=0, epoch=2, epochs=3, logs={"accuracy": 0.7, "loss": 0.7}),
    ]
    cut = encode_event(EventKind.EPOCH, fit=0, epoch=3, epochs=3, logs={"accuracy": 0.8})[:30]
    (out / EVENTS_FILE).write_text("\n".join(earlier) + "\n" + cut)  # the last launch was killed mid-line
    done, out = run_harness(tmp_path, "open('accuracy.txt', 'w').write('0.75')\n")
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = read(out, METRICS_FILE)
    assert metrics["history"] == [
        {"fit": 0, "epoch": 1, "accuracy": 0.5, "loss": 1.0},
        {"fit": 0, "epoch": 2, "accuracy": 0.7, "loss": 0.7},  # trained again after the restore: the last
    ]
    assert metrics["resumed"] == [{"fit": 0, "epoch": 1}] and metrics["epochs"] == 2
    kinds = [e.kind for e in events(out)]
    after_the_cut = [EventKind.STARTED, EventKind.METRIC, EventKind.MODEL, EventKind.FINISHED]
    assert kinds[-4:] == after_the_cut
    assert len(kinds) == len(earlier) + 4


@pytest.mark.slow
def test_a_keras_fit_records_one_epoch_event_per_epoch_with_its_logs(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        import keras
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(X / 16.0, y, epochs=3, validation_split=0.2, batch_size=128)
    """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    epochs = [e for e in events(out) if e.kind is EventKind.EPOCH]
    assert [(e.get("fit"), e.get("epoch"), e.get("epochs")) for e in epochs] == [
        (0, 1, 3),
        (0, 2, 3),
        (0, 3, 3),
    ]
    for event in epochs:
        assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(event.get("logs"))
    history = read(out, METRICS_FILE)["history"]
    assert [{"fit": e.get("fit"), "epoch": e.get("epoch"), **e.get("logs")} for e in epochs] == history
    checkpoints = [e for e in events(out) if e.kind is EventKind.CHECKPOINT]
    # The first epoch is always saved; which of the short ones after it are depends on their speed (no two
    # checkpoints closer than 0.4 s: test_monitor.py).
    assert checkpoints and checkpoints[0].get("epoch") == 1
    assert {e.get("epoch") for e in checkpoints} <= {1, 2, 3}
    assert all(e.get("name") == f"ckpt-{e.get('epoch'):06d}-000000" for e in checkpoints)


LEGACY_KERAS = """
    import keras
    from keras.utils import np_utils
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    Y = np_utils.to_categorical(y, 10)
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(X / 16.0, Y, nb_epoch=2, batch_size=128)
    model.fit(X / 16.0, Y, nb_epoch=1, batch_size=128)
    assert keras.utils.np_utils.to_categorical is keras.utils.to_categorical
"""
LEGACY_ASSERT = "assert keras.utils.np_utils.to_categorical is keras.utils.to_categorical"


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [True, False])
def test_a_compatibility_alias_is_said_only_when_the_script_uses_the_old_name(tmp_path, legacy):
    script = textwrap.dedent(LEGACY_KERAS)
    if not legacy:  # the same training in today's names
        script = (
            script.replace("from keras.utils import np_utils\n", "")
            .replace("Y = np_utils.", "Y = keras.utils.")
            .replace("nb_epoch=", "epochs=")
            .replace(LEGACY_ASSERT, "assert 'np_utils' not in vars(keras.utils)  # no alias was made")
        )
    done, out = run_harness(tmp_path, script)
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [line for line in done.stdout.splitlines() if line.startswith("[mlops] note:")]
    if legacy:
        assert len(notes) == 2, notes  # each said once, though fit got nb_epoch twice
        assert "keras.utils.np_utils" in notes[0] and "nb_epoch" in notes[1]
        assert [e.get("epochs") for e in events(out) if e.kind is EventKind.EPOCH] == [2, 2, 1]
    else:
        assert notes == []


def test_what_a_script_leaves_for_its_exit_still_happens(tmp_path):
    """The harness ends its process without the interpreter's teardown (seconds with TensorFlow loaded):
    the script's atexit handlers, the files it left open and its non-daemon threads must not notice."""
    done, out = run_harness(
        tmp_path,
        """
        import atexit, threading, time

        def later():
            time.sleep(0.5)
            open("thread.txt", "w").write("thread done")

        threading.Thread(target=later).start()
        atexit.register(lambda: open("atexit.txt", "w").write("atexit ran"))
        log = open("unclosed.txt", "w")
        log.write("never closed, never flushed")
        print("the script ends")
    """,
    )
    assert done.returncode == ExitCode.NO_METRIC, done.stderr
    found = {p.name: p.read_text() for p in out.rglob("*.txt") if p.name != "log.txt"}
    assert found["thread.txt"] == "thread done"
    assert found["atexit.txt"] == "atexit ran"
    assert found["unclosed.txt"] == "never closed, never flushed"
    assert "the script ends" in done.stdout
