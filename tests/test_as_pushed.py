"""What mlops adds never changes what a script observes (issue 23).

Trial 0 runs as pushed: no early stop unless mlops.yaml asks, and the metric the script gives when it is run
directly with ``python script.py`` (within 0.02 for Keras, 1e-6 for scikit-learn); a repository gives the
same class of result with early stopping on as with it off; a Keras 2 script that fails on Keras 3 on a
value Keras gave is tried in the legacy generation like an ``api`` failure. The full sweep over the corpus
is ``bench/bench_as_pushed.py``; here, a few representative repositories on the local runtime.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from jobs.environments import older_code
from jobs.pipeline import spec_for
from mlops.classify.rules import Framework
from mlops.config import load_settings
from mlops.domain import TrialStatus
from mlops.layout import ORIGINAL
from mlops_harness.protocol import (
    ENV_PATIENCE,
    ENV_STOP_AT,
    EVENTS_FILE,
    EventKind,
    FailureClass,
    read_events,
)
from tests.support.corpus import manifest, run_directly, train_as_pushed
from tests.support.envs import machine_env
from tests.support.trials import ledger_trial, trial_spec

ARRAY2STRING = """
import numpy as np
import keras
h = model.fit(x, y, epochs=3)
acc = h.history['accuracy'][-1]
print(np.array2string(acc * 100))
"""
TRACEBACK = """Traceback (most recent call last):
  File "/trial/work/train.py", line 6, in <module>
    print(np.array2string(acc * 100))
          ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/venv/site-packages/numpy/core/arrayprint.py", line 600, in array2string
    if a.size == 0:
AttributeError: 'float' object has no attribute 'size'
"""


def failed_trial_0(tmp_path: Path, error: str, line: int, framework: str = "keras", failure: str = "code"):
    """A run of ARRAY2STRING whose trial 0 failed with ``error`` at train.py:``line``, traceback in its folder."""
    spec = trial_spec(tmp_path, "train", ARRAY2STRING)
    ledger, run, trial = ledger_trial(spec)
    run = replace(run, framework=Framework(framework), script="train.py")
    run.dir.mkdir(parents=True, exist_ok=True)
    (run.dir / ORIGINAL).write_text(ARRAY2STRING)
    (spec.trial_dir / "outcome.json").write_text(json.dumps({"status": "error", "traceback": TRACEBACK}))
    done = replace(
        trial,
        status=TrialStatus.FAILED,
        error=error,
        error_type=error.partition(":")[0],  # the exception's class, as the harness reports it
        error_file="train.py",
        error_line=line,
        failure_class=FailureClass(failure),
    )
    return run, done, spec.trial_dir


def test_keras_2_code_that_fails_on_a_value_keras_returned_is_tried_in_the_legacy_generation(tmp_path):
    run, done, folder = failed_trial_0(tmp_path, "AttributeError: 'float' object has no attribute 'size'", 6)
    why = older_code(run, done, folder)
    assert why and "on a value Keras returned: print(np.array2string(acc * 100))" in why


def test_a_keras_object_that_lacks_what_keras_2_had_is_tried_in_the_legacy_generation(tmp_path):
    run, done, folder = failed_trial_0(
        tmp_path, "AttributeError: 'Dense' object has no attribute 'output_shape'", 3
    )
    assert "(an object of Keras)" in str(older_code(run, done, folder))


@pytest.mark.parametrize(
    ("error", "line", "framework", "failure"),
    [
        (
            "AttributeError: 'float' object has no attribute 'size'",
            3,
            "keras",
            "code",
        ),  # not a value of Keras
        ("ZeroDivisionError: division by zero", 6, "keras", "code"),  # not an Attribute- or TypeError
        ("AttributeError: 'float' object has no attribute 'size'", 6, "sklearn", "code"),  # not Keras code
        ("AttributeError: 'float' object has no attribute 'size'", 6, "keras", "data"),  # another class
    ],
)
def test_a_bug_of_the_script_s_own_is_not_tried_again(tmp_path, error, line, framework, failure):
    run, done, folder = failed_trial_0(tmp_path, error, line, framework, failure)
    assert older_code(run, done, folder) is None


def test_an_api_failure_is_tried_in_the_legacy_generation_as_before(tmp_path):
    run, done, folder = failed_trial_0(
        tmp_path, "ImportError: cannot import name 'np_utils'", 2, failure="api"
    )
    assert older_code(run, done, folder) == "ImportError: cannot import name 'np_utils'"


@pytest.mark.parametrize(("config", "stops_0"), [("", False), ("early_stop: all\n", True)])
def test_trial_0_gets_no_early_stop_unless_mlops_yaml_asks(tmp_path, config, stops_0):
    spec = trial_spec(tmp_path, "train", "print(1)\n")
    (spec.code_dir / "mlops.yaml").write_text(config)
    ledger, run, _ = ledger_trial(spec)
    make = spec_for(load_settings({"workspace": str(tmp_path / "ws")}, env=machine_env()))
    for number, stops in ((0, stops_0), (1, True)):
        env = make(run, number).env
        assert (ENV_PATIENCE in env, ENV_STOP_AT in env) == (stops, stops), (number, env)
    (spec.code_dir / "mlops.yaml").write_text("early_stop: none\n")
    assert ENV_PATIENCE not in make(run, 1).env and ENV_STOP_AT not in make(run, 1).env


# Representative repositories: a history read by epoch, a while loop around fit, a scikit-learn script.
TOLERANCE = {"history_indexed_by_epoch": 0.02, "while_accuracy_adds_layers": 0.02, "heart_csv_relative": 1e-6}
KERAS = ("history_indexed_by_epoch", "while_accuracy_adds_layers")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ws-as-pushed")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOLERANCE))
def test_trial_0_gives_the_metric_of_the_script_run_directly(name, workspace, tmp_path):
    got = train_as_pushed(name, tmp_path, workspace, "local")
    assert got.metric is not None, got.log
    assert not [
        e for e in read_events(got.run_dir / "trials" / "0" / EVENTS_FILE) if e.kind is EventKind.STOPPED
    ]
    direct, said = run_directly(name, got.script, tmp_path, got.python)
    assert direct is not None, said
    assert abs(got.metric - direct) <= TOLERANCE[name], (got.metric, direct)


@pytest.mark.slow
@pytest.mark.parametrize("name", KERAS)
def test_early_stopping_on_gives_the_same_class_of_result_as_off(name, workspace, tmp_path):
    assert manifest()[name]["expect"] == "metric"  # as pushed (test_corpus.py, and the test above)
    # A low target and a patience of 1: the first fits past 0.52 of validation accuracy stop there.
    on = train_as_pushed(name, tmp_path, workspace, "local", early_stop="all", target=0.5, patience=1)
    assert on.metric is not None, on.log
    log = (on.run_dir / "trials" / "0" / "log.txt").read_text()
    if name == "while_accuracy_adds_layers":
        assert "runs inside the while loop of line" in log and "stopped at epoch" not in log
    else:
        assert "stopped at epoch" in log and "the history it returns is filled to 8" in log
