"""Warm start across commits: real git histories, a real ledger and real codemods; the executor scores each
variant from its source (tests/support/loop.py), so these run in seconds. The same with real Keras training
is tests/test_warm_start_training.py."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from mlops import lineage
from mlops.domain import RunStatus
from mlops.layout import ORIGINAL
from mlops.ledger import Ledger, RunRecord
from mlops.progress import Progress
from mlops.pull import pull
from tests.support.loop import FakeExecute, spec_for
from tests.support.processes import run_cli
from tests.support.repos import make_repo
from tweak.loop import Budget, Tuner
from tweak.strategies import TPE, SearchState
from tweak.warm import WarmStarted, warm_start

DENSE = """\
import keras
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
model = keras.Sequential([
    keras.Input(shape=(64,)),
    keras.layers.Dense(3, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=3, batch_size=32)
"""
TARGET = 0.85


def score(source: str) -> float:
    """A model that needs two hidden layers and wide ones to reach the target (more epochs help a little)."""
    dense = re.findall(r"Dense\((\d+)", source)
    units = [int(u) for u in dense[:-1]]
    epochs = int(re.search(r"epochs=(\d+)", source).group(1))
    value = 0.5 + 0.2 * (len(units) >= 2) + 0.15 * (min(units, default=0) >= 32) + 0.05 * (epochs >= 10)
    return round(value, 3)


def ladder_score(source: str) -> float:
    """Each step of the ladder a little better than the one before; none at the target."""
    hidden = len(re.findall(r"Dense\((\d+)", source)) - 1
    epochs = int(re.search(r"epochs=(\d+)", source).group(1))
    return round(0.5 + 0.05 * hidden + 0.05 * (epochs >= 9), 3)


def run_commit(
    ledger: Ledger,
    ws: Path,
    repo: Path,
    strategy: str = "tpe",
    warm: bool = True,
    max_trials: int = 8,
    scored=score,
) -> tuple[RunRecord, FakeExecute, str]:
    """What `mlops run` does with the commit checked out: a run linked to its lineage, tuned."""
    checkout = pull(str(repo), None, ws, ledger)
    run = ledger.create_run(
        name="model",
        source=checkout.source,
        ref=None,
        commit=checkout.commit,
        author=checkout.author,
        code_dir=checkout.code_dir,
        script="model.py",
        classification={"kind": "ann", "framework": "keras", "image": "mlops-keras3"},
        runtime="local",
        metric="accuracy",
        target=TARGET,
        strategy=strategy,
        max_trials=max_trials,
        settings={"seed": 0, "warm_start": warm},
        runs_dir=ws / "runs",
    )
    lineage.record(ledger, run, lineage.branch_of(checkout))
    (run.dir / ORIGINAL).write_text((checkout.code_dir / "model.py").read_text())
    execute = FakeExecute(ledger, scored)
    out = io.StringIO()
    budget = Budget(target=TARGET, max_trials=max_trials, max_minutes=None, parallel=1)
    done = Tuner(ledger, Progress(out), execute, spec_for, budget).tune(run)
    return done, execute, out.getvalue()


def trials_to_target(ledger: Ledger, run: RunRecord) -> int | None:
    """Trials trained until the first at the target, trial 0 included (None: never reached)."""
    for t in ledger.trials(run.id):
        if t.metric is not None and t.metric >= TARGET:
            return t.number + 1
    return None


def test_a_commit_that_only_touches_a_comment_reaches_the_target_in_trial_1(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": DENSE})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    cold, _, _ = run_commit(ledger, tmp_path / "ws", repo)
    assert cold.status is RunStatus.REACHED
    cold_trials = trials_to_target(ledger, cold)
    assert cold_trials > 2  # the weak model needs more than the first guess from scratch

    make_repo(repo, {"model.py": "# tuned last time\n" + DENSE}, "a comment")
    warm, execute, said = run_commit(ledger, tmp_path / "ws", repo)

    assert warm.status is RunStatus.REACHED
    assert trials_to_target(ledger, warm) == 2  # trial 0 as pushed, then the earlier best
    assert execute.ran == [0, 1]
    first = ledger.trial(warm.id, 1)
    best = ledger.trial(cold.id, cold.best_trial)
    assert first.tweaks == best.tweaks
    why = [c for c in first.changes if c.startswith("why: ")]
    assert why == [
        f"why: the best of commit {cold.commit[:7]}: " + ", ".join(best.changes[: len(best.tweaks)])
    ]
    assert lineage.warm_from(ledger, warm).id == cold.id
    assert f"warm start from run {cold.id} (commit {cold.commit[:7]})" in said
    assert ledger.trial(warm.id, 0).tweaks == []  # trial 0 still trains the code as pushed
    ledger.close()
    shown = run_cli("history", "--json", "--workspace", str(tmp_path / "ws"), cwd=tmp_path).stdout
    assert [json.loads(line)["warm_from"] for line in shown.splitlines()] == [None, cold.id]


def test_a_commit_that_removes_the_layer_a_change_applied_to_drops_that_change_and_says_so(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": DENSE})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    cold, _, _ = run_commit(ledger, tmp_path / "ws", repo)
    best = ledger.trial(cold.id, cold.best_trial)
    assert any(t[0] == "scale_units" for t in best.tweaks)  # the hidden layer was widened

    no_hidden = DENSE.replace('    keras.layers.Dense(3, activation="relu"),\n', "")
    make_repo(repo, {"model.py": no_hidden}, "no hidden layer")
    warm, _, _ = run_commit(ledger, tmp_path / "ws", repo)

    first = ledger.trial(warm.id, 1)
    assert [t[0] for t in first.tweaks] == [t[0] for t in best.tweaks if t[0] != "scale_units"]
    why = next(c for c in first.changes if c.startswith("why: "))
    assert f"the best of commit {cold.commit[:7]}" in why
    assert "dropped, no longer applies: scale_units (factor" in why
    assert "no hidden units to scale" in why


def test_no_warm_start_searches_from_scratch(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": DENSE})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    cold, _, _ = run_commit(ledger, tmp_path / "ws", repo)
    make_repo(repo, {"model.py": "# again\n" + DENSE}, "a comment")
    again, _, said = run_commit(ledger, tmp_path / "ws", repo, warm=False)

    assert lineage.previous_run(ledger, again).id == cold.id  # the lineage is there, not used
    assert lineage.warm_from(ledger, again) is None
    assert "warm start" not in said
    assert ledger.trial(again.id, 1).changes[-1].startswith("why: an informed first guess")


def test_a_repository_can_turn_warm_start_off_in_its_mlops_yaml(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": DENSE})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    run_commit(ledger, tmp_path / "ws", repo)
    make_repo(repo, {"mlops.yaml": "warm_start: false\n"}, "no warm start")
    again, _, _ = run_commit(ledger, tmp_path / "ws", repo)
    assert lineage.warm_from(ledger, again) is None


def test_the_earlier_trials_that_still_apply_seed_tpe_and_the_ladder(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": DENSE})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    cold, _, _ = run_commit(ledger, tmp_path / "ws", repo)
    make_repo(repo, {"model.py": "# a comment\n" + DENSE}, "a comment")
    checkout = pull(str(repo), None, tmp_path / "ws", ledger)
    run = ledger.create_run(
        **{
            **_fields(cold),
            "commit": checkout.commit,
            "code_dir": checkout.code_dir,
            "runs_dir": tmp_path / "ws" / "runs",
        }
    )
    warm = warm_start(ledger, run, (checkout.code_dir / "model.py").read_text())

    tuned = [t for t in ledger.trials(cold.id) if t.number > 0 and t.metric is not None]
    assert len(warm.seeds) == len(tuned)  # a comment changes nothing any tweak needs
    assert {p.origin for p in warm.seeds} == {cold.commit[:7]}
    state = _state(run, DENSE, number=2)
    study, _ = TPE()._study(WarmStarted(TPE(), warm).seeded(state), 0)
    assert len(study.trials) == len(tuned)  # TPE's history starts with the earlier commit's trials


def test_the_ladder_goes_on_from_the_earlier_best_step(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": DENSE})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    cold, _, _ = run_commit(ledger, tmp_path / "ws", repo, "ladder", max_trials=4, scored=ladder_score)
    best = ledger.trial(cold.id, cold.best_trial)
    assert cold.best_trial == 3  # steps 1, 2 and 3, each better than the one before
    make_repo(repo, {"model.py": "# a comment\n" + DENSE}, "a comment")
    warm, _, _ = run_commit(ledger, tmp_path / "ws", repo, "ladder", max_trials=3, scored=ladder_score)

    assert ledger.trial(warm.id, 1).tweaks == best.tweaks  # step 3 again, on the new source
    second = ledger.trial(warm.id, 2)
    assert len(second.tweaks) == 4  # then step 4, where the earlier run stood, not step 2
    assert second.changes[-1] == "why: ladder step 4"


def _fields(run: RunRecord) -> dict:
    return {
        "name": "model",
        "source": run.source,
        "ref": None,
        "author": run.author,
        "script": run.script,
        "classification": {"kind": "ann", "framework": "keras"},
        "runtime": "local",
        "metric": "accuracy",
        "target": TARGET,
        "strategy": "tpe",
        "max_trials": 8,
        "settings": {"seed": 0},
    }


def _state(run: RunRecord, source: str, number: int) -> SearchState:
    from mlops.domain import Kind
    from tweak.facts import model_facts

    return SearchState(Kind.ANN, "keras", model_facts(source), TARGET, 0, number, past=[])
