"""Why a trial failed: one class and a hint, in the harness's own rules, through the real harness, and in
what the loop does next (a class no tweak can fix ends the run at trial 0)."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest

from mlops_harness.failures import Failure, classify
from mlops_harness.protocol import FailureClass
from tests.support.processes import run_harness
from tests.support.repos import make_repo


def failure_of(raise_it, prompts=()) -> Failure:  # noqa: ANN001
    try:
        raise_it()
    except BaseException as e:  # noqa: BLE001
        return classify(e, Path("/nowhere"), Path("/nowhere/train.py"), "train.py", 7, prompts)
    raise AssertionError("nothing was raised")


def raiser(exc: BaseException):  # noqa: ANN201
    def go() -> None:
        raise exc

    return go


def test_a_missing_module_is_the_environment_and_names_the_distribution_to_install():
    got = failure_of(raiser(ModuleNotFoundError("No module named 'cv2'", name="cv2")))
    assert got.cls is FailureClass.ENVIRONMENT
    assert (
        "'cv2' is not installed" in got.hint
        and "opencv-python-headless" in got.hint
        and "train.py:7" in got.hint
    )
    got = failure_of(raiser(ModuleNotFoundError("No module named 'seaborn'", name="seaborn")))
    assert got.cls is FailureClass.ENVIRONMENT and "list seaborn in" in got.hint


def test_a_module_path_a_library_moved_is_old_library_code():
    moved = ModuleNotFoundError("No module named 'json.tool_old'", name="json.tool_old")
    assert failure_of(raiser(moved)).cls is FailureClass.ENVIRONMENT  # not a framework: a missing module
    old_keras = ImportError("cannot import name 'np_utils' from 'keras.utils'", name="keras.utils")
    got = failure_of(raiser(old_keras))
    assert got.cls is FailureClass.API and "another version of keras" in got.hint
    for message in ("Invalid filepath extension for saving. Please add either a `.keras` extension",
                    "Sequential.fit() got an unexpected keyword argument 'nb_epoch'",
                    "'Sequential' object has no attribute 'predict_classes'"):  # fmt: skip
        assert failure_of(raiser(ValueError(message))).cls is FailureClass.API, message
    got = failure_of(raiser(KeyError("accuracy")))
    assert got.cls is FailureClass.API and "'acc' or 'accuracy'" in got.hint


def test_data_downloads_prompts_and_the_rest():
    data = failure_of(raiser(FileNotFoundError(2, "No such file or directory", "/root/train_set/labels.csv")))
    assert (
        data.cls is FailureClass.DATA and "/root/train_set/labels.csv" in data.hint and "data:" in data.hint
    )
    url = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    download = failure_of(raiser(Exception(f"URL fetch failure on {url}: None -- [Errno -3]")))
    assert download.cls is FailureClass.DOWNLOAD and url in download.hint
    refused = failure_of(raiser(urllib.error.URLError("[Errno 111] Connection refused")))
    assert refused.cls is FailureClass.DOWNLOAD
    prompt = failure_of(raiser(EOFError("EOF when reading a line")), prompts=["number of epochs? "])
    assert (
        prompt.cls is FailureClass.INPUT and "'number of epochs?'" in prompt.hint and "inputs:" in prompt.hint
    )
    assert failure_of(raiser(ZeroDivisionError("division by zero"))).cls is FailureClass.CODE


def test_a_name_a_fragment_never_defines_says_what_would_define_it():
    def fragment() -> None:
        exec("model = Sequential()", {})  # a notebook cell pasted without the cells above it

    def cell() -> None:
        exec("history = print(X_train, y_train)", {})

    imported = failure_of(fragment)
    assert imported.cls is FailureClass.CODE
    assert "uses Sequential (train.py:7) without importing it" in imported.hint
    assert "`from keras.models import Sequential`" in imported.hint
    made = failure_of(cell)
    assert (
        "uses X_train (train.py:7) and never defines it" in made.hint and "notebook cell above" in made.hint
    )


NOTEBOOK_SAVED_AS_PY = """{
 "cells": [{"cell_type": "code", "metadata": {"collapsed": true}, "execution_count": null, "source": []}],
 "metadata": {},
 "nbformat": 4
}
"""


def test_a_repository_file_that_hides_a_standard_module_is_named_as_the_cause(tmp_path):
    done, out = run_harness(
        tmp_path,
        "import pdb  # imports the standard library's code module\nopen('accuracy.txt', 'w').write('1')\n",
        extra_files={"code.py": NOTEBOOK_SAVED_AS_PY},
    )
    assert done.returncode == 1
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["error"] == "NameError: name 'true' is not defined"
    assert outcome["error_type"] == "NameError"  # what the orchestrator decides on
    assert outcome["failure_class"] == "code"
    assert "code.py in the repository hides the standard library's module 'code'" in outcome["hint"]


def test_input_fails_at_once_with_its_prompt_and_class(tmp_path):
    done, out = run_harness(tmp_path, "layers = int(input('how many convolution layers? '))\n", timeout=60)
    assert done.returncode == 1
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["failure_class"] == "input" and "'how many convolution layers?'" in outcome["hint"]


def test_an_accuracy_written_to_an_absolute_path_of_the_authors_machine_is_read(tmp_path):
    assert not Path("/newdir").exists()
    done, out = run_harness(tmp_path, "f = open('/newdir/o.txt', 'w')\nf.write('93.5%')\nf.close()\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: /newdir/o.txt cannot be written here" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["value"] == pytest.approx(0.935)
    assert metrics["source"] == "file:/newdir/o.txt"  # the path as the script wrote it, not where it went
    assert (out / "outside" / "newdir" / "o.txt").read_text() == "93.5%"
    assert not Path("/newdir").exists()


@pytest.mark.slow
def test_a_metric_measured_before_the_script_fails_is_kept_with_a_warning(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_iris
        from sklearn.tree import DecisionTreeClassifier
        X, y = load_iris(return_X_y=True)
        print("accuracy", DecisionTreeClassifier(random_state=0).fit(X, y).score(X, y))
        raise OSError("cannot open the display to show the plot")
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["status"] == "ok" and outcome["failed_after_metric"]["line"] == 6
    assert "cannot open the display" in outcome["failed_after_metric"]["error"]
    assert json.loads((out / "metrics.json").read_text())["value"] == 1.0
    assert "warning: the metric was measured, then the script failed at train.py:6" in done.stdout


@pytest.mark.slow
def test_a_run_whose_code_lacks_a_module_ends_at_trial_0_with_the_class_and_hint(tmp_path):
    from tests.support.processes import run_cli

    repo = make_repo(
        tmp_path / "repo",
        {
            "plots.py": "import seaborn\nfrom sklearn.cluster import KMeans\nKMeans(3).fit([[0], [1], [2], [3]])\n"
        },
    )
    # --no-install: the run's environment is the venv as it is (with install, seaborn would be installed)
    done = run_cli(
        "run", str(repo), "--runtime", "local", "--no-install", "--workspace", str(tmp_path / "ws"), cwd=tmp_path
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        "[environment]" in done.stderr and "list seaborn in the repository's requirements.txt" in done.stderr
    )
    shown = run_cli("history", "--json", "--workspace", str(tmp_path / "ws"), cwd=tmp_path).stdout
    (run,) = [json.loads(line) for line in shown.splitlines()]
    assert run["status"] == "failed" and run["trials"] == 1  # no tuning trial to fail the same way
