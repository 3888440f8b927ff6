"""What a run gives back: ``runs/<run>/model/`` with its card, the commands that show it and copy it out,
and the space models and checkpoints take.

The fast tests build trial folders as the harness leaves them (a MODEL event and the model's bytes) and end
the run with the real ``finish_run``; the slow ones record real runs (real training, the load check on the
local runtime) and read them through the ``mlops`` command, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

from mlops.domain import KeepModels, RunStatus
from mlops.layout import RunLayout
from mlops.ledger import Ledger
from mlops.load_check import check_model
from mlops.model_store import ModelPolicy, publish, read_card, verdict
from mlops.report import write_report
from mlops.runtime.base import Limits
from mlops.runtime.local import LocalRuntime
from tests.support.model_checks import fresh_python
from tests.support.models_left import SKLEARN, finished_run
from tests.support.processes import run_cli
from tests.support.recorded import Variant, record_run
from tests.support.scripts import CLASSIFIER, TWEAK


def test_the_best_trials_model_is_published_with_its_card_and_only_it_is_kept(tmp_path):
    ledger, run = finished_run(tmp_path, [b"first model", b"second model"])
    card = read_card(run)
    model = run.dir / "model" / "model.pkl"
    assert model.read_bytes() == b"second model" and card["file"] == "model.pkl"
    assert card["sha256"] == hashlib.sha256(b"second model").hexdigest()
    assert card["metric"] == {
        "name": "accuracy",
        "value": 0.6,
        "source": "score",
        "target": 0.9,
        "reached": False,
    }
    assert card["trial"] == {"number": 1, "changes": ["change 1"], "seed": 1}
    assert card["commit"] == "a" * 40 and card["source"] == "https://example.com/models.git"
    assert card["input"]["shape"] == [None, 64] and card["versions"]["scikit-learn"] == "1.9.1"
    assert card["load"] == "import joblib; model = joblib.load('model.pkl')" and card["check"] is None
    for number in (0, 1):  # keep_models=best: the trials' own copies go, and their checkpoints
        assert not (RunLayout(run.dir).trial(number).dir / "model").exists()
        assert not (RunLayout(run.dir).trial(number).dir / "checkpoints").exists()
    kinds = [e.kind for e in ledger.events(run.id)]
    assert "model-not-loaded" in kinds  # it was not checked, so it is not said to load
    assert ledger.run(run.id).status is RunStatus.EXHAUSTED


def test_keep_all_keeps_every_trials_model_and_the_run_has_a_copy_of_its_own(tmp_path):
    policy = ModelPolicy(keep=KeepModels.ALL, keep_checkpoints=True)
    _, run = finished_run(tmp_path, [b"first model", b"second model"], policy)
    ours, trials = (
        run.dir / "model" / "model.pkl",
        [RunLayout(run.dir).trial(n).dir / "model" / "model.pkl" for n in (0, 1)],
    )
    assert [t.read_bytes() for t in trials] == [b"first model", b"second model"]
    assert ours.read_bytes() == b"second model"
    # A copy of its own, never a link to what the trial left (which the trial could have linked elsewhere).
    assert ours.stat().st_ino != trials[1].stat().st_ino and ours.stat().st_nlink == 1
    assert (RunLayout(run.dir).trial(0).dir / "checkpoints").is_dir()  # keep_checkpoints


def test_publishing_again_after_a_crash_keeps_the_model(tmp_path):
    ledger, run = finished_run(tmp_path, [b"the model"])
    first = read_card(run)
    assert not (RunLayout(run.dir).trial(0).dir / "model").exists()  # let go after the first publish
    card = publish(ledger, run, ledger.trial(run.id, 0), ModelPolicy())  # a resumed run publishes again
    assert card["file"] == first["file"] and card["sha256"] == first["sha256"] and not card.get("error")
    assert (run.dir / "model" / "model.pkl").read_bytes() == b"the model"


def test_a_model_whose_bytes_changed_is_not_passed_off_as_the_trained_one(tmp_path):
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    _, run = finished_run(tmp_path, [b"the model"], ModelPolicy(keep=KeepModels.ALL))
    tampered = RunLayout(run.dir).trial(0).dir / "model" / "model.pkl"
    (run.dir / "model" / "model.pkl").unlink()
    tampered.unlink()
    tampered.write_bytes(b"something else")
    card = publish(ledger, run, ledger.trial(run.id, 0), ModelPolicy(keep=KeepModels.ALL))
    assert card["file"] is None and "sha256 differs" in card["error"]
    assert verdict(card).startswith("The best trial's model was not kept")


def test_a_best_trial_whose_model_could_not_be_saved_gets_a_card_saying_why(tmp_path):
    ledger, run = finished_run(tmp_path, [b"a model", None])
    card = read_card(run)
    assert card["file"] is None and card["trial"]["number"] == 1
    assert card["error"] == "the model was not saved: PicklingError: cannot pickle 'generator'"
    assert not (run.dir / "model" / "model.pkl").exists()
    page = write_report(ledger, run.id).read_text()
    assert "The best trial&#x27;s model was not kept: the model was not saved: PicklingError" in page
    done = run_cli("model", run.id, "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"mlops: error: run {run.id} has no model: the model was not saved: PicklingError: cannot pickle 'generator'"
    )


def test_a_load_check_that_cannot_run_leaves_the_model_and_says_it_is_unchecked(tmp_path):
    runtime = LocalRuntime(tmp_path / "ws", python=str(tmp_path / "no-such-python"))

    def check(run, folder):
        return check_model(runtime, run, folder, Limits(timeout_s=60, memory_mb=512))

    ledger, run = finished_run(tmp_path, [b"the model"], ModelPolicy(check=check))
    card = read_card(run)
    assert card["file"] == "model.pkl" and (run.dir / "model" / "model.pkl").read_bytes() == b"the model"
    assert card["check"]["loaded"] is None and card["check"]["error"].startswith("the check did not run: ")
    assert "no-such-python" in card["check"]["error"]
    assert verdict(card).startswith("The model could not be checked: the check did not run")
    assert not (run.dir / ".model-check").exists() and ledger.run(run.id).status is RunStatus.EXHAUSTED


def test_the_mlops_command_shows_the_model_copies_it_out_and_counts_the_space(tmp_path):
    _, run = finished_run(tmp_path, [b"first model", b"second model"])
    ws = ["--workspace", str(tmp_path / "ws")]
    shown = run_cli("model", run.id, *ws, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == str(run.dir / "model" / "model.pkl")
    assert f"joblib.load('{run.dir / 'model' / 'model.pkl'}')" in shown.stdout
    copied = run_cli("model", run.id, "--to", str(tmp_path / "out"), *ws, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "out" / "model.pkl").read_bytes() == b"second model"
    assert json.loads((tmp_path / "out" / "model.json").read_text())["run"] == run.id
    (line,) = run_cli("history", "--json", *ws, cwd=tmp_path).stdout.splitlines()
    assert json.loads(line)["model"] == str(run.dir / "model" / "model.pkl")
    details = json.loads(run_cli("show", run.id, "--json", *ws, cwd=tmp_path).stdout)
    assert details["model"] == json.loads(line)["model"] and details["model_card"]["trial"]["number"] == 1
    table = run_cli("history", *ws, cwd=tmp_path).stdout
    models = sum(p.stat().st_size for p in (run.dir / "model").iterdir())  # the model and its card
    assert f"space: {tmp_path / 'ws'} uses " in table
    assert f"(models {models} B, checkpoints 0 B, checkouts 0 B" in table
    assert "model: " in run_cli("show", run.id, *ws, cwd=tmp_path).stdout


def test_mlops_model_on_an_unknown_run_or_a_run_with_no_model_fails_clearly(tmp_path):
    ws = ["--workspace", str(tmp_path / "ws")]
    Ledger(tmp_path / "ws" / "ledger.db")
    done = run_cli("model", "7-nothing", *ws, cwd=tmp_path)
    assert done.returncode == 1 and "no run '7-nothing'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_keep_models_setting_exits_2_naming_it(tmp_path):
    done = run_cli(
        "history", "--workspace", str(tmp_path / "ws"), cwd=tmp_path, env={"MLOPS_KEEP_MODELS": "some"}
    )
    assert done.returncode == 2
    assert "MLOPS_KEEP_MODELS: keep_models must be one of best, all but got 'some'" in done.stderr


# -- real runs ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_recorded_run_gives_back_a_checked_model_the_report_links_and_shows(tmp_path):
    better = CLASSIFIER.replace("C=1e-05", "C=1.0")
    variants = [Variant(CLASSIFIER), Variant(better, ["C 1e-05 -> 1.0"], [TWEAK])]
    ledger, run = record_run(tmp_path / "run", "clf.py", variants, SKLEARN, target=0.9)
    card = read_card(run)
    assert card["check"]["loaded"] is True and card["check"]["predicted"] is True
    assert card["check"]["runtime"] == "local" and card["check"]["output_shape"] == [4]
    assert card["class"] == "LogisticRegression" and card["trial"]["number"] == 1 == run.best_trial
    page = write_report(ledger, run.id).read_text()
    assert '<a href="model/model.pkl">model/model.pkl</a>' in page and "<h2>The model</h2>" in page
    assert "loaded and predicted [4] from a batch of 4 (local)" in page and card["sha256"] in page
    assert "model-problem" not in page
    code = textwrap.dedent(CLASSIFIER).split("model = ")[0]  # the script's data and split
    score = fresh_python(
        code + "import sys, joblib\nprint(repr(joblib.load(sys.argv[1]).score(Xte, yte)))\n",
        str(run.dir / "model" / "model.pkl"),
    )
    assert abs(float(score) - run.best_metric) <= 1e-6


@pytest.mark.slow
def test_a_model_that_does_not_load_is_said_in_the_verdict(tmp_path):
    keras = {"kind": "ann", "family": "dense", "framework": "keras", "image": "mlops-keras3"}
    script = """
        import keras
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)


        @keras.saving.register_keras_serializable()
        class Scale(keras.layers.Layer):  # registered here, so it loads here; a fresh process lacks it
            def __init__(self, factor=1.0, **kwargs):
                super().__init__(**kwargs)
                self.factor = factor

            def call(self, x):
                return x * self.factor

            def get_config(self):
                return {**super().get_config(), "factor": self.factor}


        model = keras.Sequential([keras.Input((64,)), Scale(0.1), keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(X, y, epochs=2, verbose=0, validation_split=0.2)
    """
    ledger, run = record_run(tmp_path / "run", "net.py", [Variant(script)], keras)
    card = read_card(run)
    assert run.best_metric is not None and card["file"] == "model.keras" and card["reload_error"] is None
    assert card["check"]["loaded"] is False and "Scale" in card["check"]["error"]
    page = write_report(ledger, run.id).read_text()
    assert "The model did not load in a fresh process: " in page and "model-problem" in page
    assert any(e.kind == "model-not-loaded" for e in ledger.events(run.id))
