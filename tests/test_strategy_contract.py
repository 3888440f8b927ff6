"""One contract, every strategy: what the tuning loop relies on when it asks a strategy for the next trial.

- The same ``SearchState`` gives the same ``Proposal`` (a strategy keeps nothing between calls).
- No proposal repeats a past trial: its tweaks, answers and tuned lines differ from every trial so far,
  trial 0 (the code as pushed, no change at all) and the trials still under way included.
- A strategy ends (returns None) within its space: it never proposes more trials than its space holds.
- A resumed run proposes what it proposed before: the ledger keeps what a strategy needs (the proposal's
  tweaks and params come back from it unchanged), so a run killed in the middle goes on as if it had not
  been.

Each test runs against every strategy of ``STRATEGIES`` and every kind of model: a Keras CNN (trained on
unscaled pixels, overfitting), Keras dense networks (one whose loss stalled, one already roomy), a
scikit-learn MLP, KMeans (with the harness's curve of k), and scikit-learn classifiers (one with nothing to
tune, one that asks its tree depth with ``input()``), in tests/support/strategy_cases.py. The states are
built by hand, and by the real tuning loop on a real ledger with the fake executor of the loop's tests in
place of training.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops.domain import StrategyName, TrialStatus
from mlops.layout import PARAMS, SOURCE, RunLayout
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.runtime.base import TrialSpec
from mlops_harness.protocol import EVENTS_FILE, INPUTS_FILE, METRICS_FILE, EventKind, encode_event, read_json
from tests.support.loop import FakeExecute, new_run, tuner
from tests.support.strategy_cases import CASES, TRIAL_0_METRIC, Case, state_of, trial_0
from tweak.codemods import tweak_from_json
from tweak.strategies import STRATEGIES, Past, Proposal, make_strategy

CASE = {case.name: case for case in CASES}

# How many trials each strategy's space holds for each case, beyond trial 0: the contract's bound on the
# proposals before None. None: a space too large to exhaust in a test (TPE on Keras searches the rate, the
# epochs, the units, the filters and a layer more: tens of thousands of variants), which a run's budget ends.
SPACES: dict[StrategyName, dict[str, int | None]] = {
    StrategyName.LADDER: {
        "cnn": 5,  # the ladder's five steps
        "ann-stalled": 5,
        "ann-roomy": 5,
        "mlp": 2,  # wider, then more iterations
        "kmeans": 5,  # k = 3..7 (trial 0 had 2)
        "forest": 1,  # its one estimator step: more trees (tweak/estimators.py)
        "forest-asked": 2,  # more trees, with the answered depth at 6, then at 12
    },
    StrategyName.TPE: {
        "cnn": None,
        "ann-stalled": None,
        "ann-roomy": None,
        "mlp": 9,  # 4 hidden layer sizes x 2 iteration caps, and the first guess (the width alone)
        "kmeans": 5,
        "forest": 28,  # 4 tree counts x 7 depths (tweak/estimators.py CHOICES)
        "forest-asked": 64,  # 4 tree counts x the answered depth 1..16
    },
}


def fake_metric(*what: Any) -> float:
    """A stand-in for training: a fixed value in 0.2..0.7 per variant (below the target: runs go on)."""
    return 0.2 + (zlib.crc32(repr(what).encode()) % 500) / 1000


def changes(proposal: Proposal) -> tuple[Any, ...]:
    """What a trial trains differently from the code as pushed: its tweaks, answers and tuned lines."""
    return (proposal.tweaks, proposal.inputs, proposal.files)


def proposals(name: StrategyName, case: Case, limit: int, batch: int = 1) -> Iterator[Proposal]:
    """The strategy's proposals, each trial recorded as the loop records it; ``batch`` proposals at a time,
    each seeing the others of its batch under way (no metric yet), as the loop's parallel batches do."""
    past = [trial_0(case)]
    while len(past) <= limit:
        under_way: list[Past] = []
        for _ in range(batch):
            number = len(past) + len(under_way)
            proposal = make_strategy(name).propose(state_of(case, number, past + under_way))
            if proposal is None:
                return
            yield proposal
            under_way.append(Past(number, proposal.tweaks, TrialStatus.RUNNING, None, proposal.params))
        for trial in under_way:
            metric = fake_metric(trial.tweaks, trial.params)
            past.append(Past(trial.number, trial.tweaks, TrialStatus.SUCCEEDED, metric, trial.params))


every_strategy = pytest.mark.parametrize("name", list(STRATEGIES))
every_case = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


# -- built by hand ------------------------------------------------------------------------------------


@every_strategy
@every_case
def test_the_same_state_gives_the_same_proposal(name, case):
    first = list(proposals(name, case, limit=6))
    assert first == list(proposals(name, case, limit=6))
    # One strategy asked about other states in between proposes the same again: it keeps nothing.
    strategy = make_strategy(name)
    past = [trial_0(case)]
    before = strategy.propose(state_of(case, 1, past))
    if before is not None:
        later = Past(1, before.tweaks, TrialStatus.SUCCEEDED, 0.5, before.params)
        strategy.propose(state_of(case, 2, [*past, later]))
    assert strategy.propose(state_of(case, 1, past)) == before == (first[0] if first else None)


@every_strategy
@every_case
def test_the_same_state_and_curve_give_the_same_pruning_decision(name, case):
    past = [trial_0(case)]
    for number, proposal in enumerate(proposals(name, case, limit=4), start=1):
        past.append(Past(number, proposal.tweaks, TrialStatus.SUCCEEDED, 0.2 + 0.1 * number, proposal.params))
    state = state_of(case, len(past), past)
    for curve in ([0.1], [0.1, 0.12, 0.13], [0.9]):
        decisions = {make_strategy(name).should_prune(state, curve) for _ in range(2)}
        assert len(decisions) == 1, (curve, decisions)


@every_strategy
@every_case
@pytest.mark.parametrize("batch", [1, 3])
def test_no_proposal_repeats_a_past_trial(name, case, batch):
    made = [([], {}, {})]  # trial 0: the code as pushed, nothing changed
    for proposal in proposals(name, case, limit=12, batch=batch):
        assert changes(proposal) not in made, (len(made), proposal)
        made.append(changes(proposal))


BOUNDED = [
    (name, CASE[case], size)
    for name, sizes in SPACES.items()
    for case, size in sizes.items()
    if size is not None
]


def test_every_strategy_and_every_case_has_its_space_stated():
    assert set(SPACES) == set(STRATEGIES)
    assert all(set(sizes) == set(CASE) for sizes in SPACES.values())


@pytest.mark.parametrize(
    ("name", "case", "size"), BOUNDED, ids=[f"{name}-{case.name}" for name, case, _ in BOUNDED]
)
def test_every_strategy_ends_within_its_space(name, case, size):
    made = list(proposals(name, case, limit=size + 5))
    assert len(made) <= size, [changes(p) for p in made]
    past = [trial_0(case)] + [
        Past(n, p.tweaks, TrialStatus.SUCCEEDED, 0.5, p.params) for n, p in enumerate(made, start=1)
    ]
    assert make_strategy(name).propose(state_of(case, len(past), past)) is None


# -- built by the tuning loop from the ledger ------------------------------------------------------------


class Killed(BaseException):
    """The orchestrator died (a kill, a reboot): nothing of it runs after this."""


class MeasuringExecute(FakeExecute):
    """Trains nothing: leaves in trial 0's folder what the harness would have measured there (its history,
    the KMeans curve, the prompts it answered), and scores each variant from its source and answers.
    With ``die_at``, the orchestrator dies while that trial trains."""

    def __init__(self, ledger: Ledger, case: Case, die_at: int | None = None) -> None:
        super().__init__(ledger, score=fake_metric)
        self.case = case
        self.die_at = die_at

    def measure(self, spec: TrialSpec) -> float:
        answers = (read_json(spec.trial_dir / INPUTS_FILE) or {}).get("answers")
        if spec.trial == 0:
            measured = {
                "history": self.case.history,
                "kmeans": self.case.kmeans,
                "inputs": [self.case.inputs],
            }
            (spec.trial_dir / METRICS_FILE).write_text(json.dumps(measured))
            events = [
                encode_event(EventKind.INPUT, index=i, prompt=text, answer=answer)
                for i, (text, answer) in enumerate(self.case.asked)
            ]
            (spec.trial_dir / EVENTS_FILE).write_text("".join(e + "\n" for e in events))
            return TRIAL_0_METRIC
        return fake_metric(spec.source_file.read_text(), answers)

    def __call__(self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune) -> TrialRecord:
        if trial.number == self.die_at:
            self.ledger.start_trial(run.id, trial.number, {"runtime": "fake"})
            raise Killed
        return super().__call__(run, trial, spec, prune)


MAX_TRIALS = 6


def loop_run(folder: Path, name: StrategyName, case: Case) -> tuple[Ledger, RunRecord]:
    folder.mkdir()
    ledger = Ledger(folder / "ledger.db")
    run = new_run(folder, ledger, case.source, case.kind, case.framework, name.value, MAX_TRIALS)
    if case.asked:  # mlops.yaml's inputs:, as job 2 records them
        answers = [answer for _, answer in case.asked]
        (run.dir / INPUTS_FILE).write_text(json.dumps({"answers": answers}))
    return ledger, run


def recorded(ledger: Ledger, run: RunRecord) -> list[tuple[Any, ...]]:
    """Each trial as the ledger and its folder keep it, without the times."""
    rows = []
    for t in ledger.trials(run.id):
        folder = RunLayout(run.dir).trial(t.number).dir
        inputs = read_json(folder / INPUTS_FILE)
        params = read_json(folder / PARAMS)
        rows.append(
            (t.number, t.status, t.tweaks, t.changes, t.metric, params, inputs, (folder / SOURCE).read_text())
        )
    return rows


def tuned(folder: Path, name: StrategyName, case: Case, parallel: int) -> list[tuple[Any, ...]]:
    """The trials of a run tuned to its budget without a break."""
    ledger, run = loop_run(folder, name, case)
    try:
        tuner(ledger, MeasuringExecute(ledger, case), MAX_TRIALS, parallel).tune(run)
        return recorded(ledger, run)
    finally:
        ledger.close()


@every_strategy
@every_case
@pytest.mark.parametrize("parallel", [1, 2])
def test_a_resumed_run_proposes_what_it_proposed_before(tmp_path, name, case, parallel):
    whole = tuned(tmp_path / "whole", name, case, parallel)
    die_at = min(3, len(whole) - 1)
    ledger, run = loop_run(tmp_path / "resumed", name, case)
    try:
        with pytest.raises(Killed):
            tuner(ledger, MeasuringExecute(ledger, case, die_at), MAX_TRIALS, parallel).tune(run)
        assert ledger.trial(run.id, die_at).status is TrialStatus.RUNNING
        tuner(ledger, MeasuringExecute(ledger, case), MAX_TRIALS, parallel).tune(ledger.run(run.id))
        assert recorded(ledger, run) == whole
    finally:
        ledger.close()


@every_strategy
@every_case
def test_the_ledger_gives_back_what_the_strategy_proposed(tmp_path, name, case):
    """The loop rebuilds each state from the ledger; the strategy, given the trials as it proposed them
    (its own objects, never written down), proposes the same: recording loses nothing it relies on."""
    ledger, run = loop_run(tmp_path / "run", name, case)
    try:
        tuner(ledger, MeasuringExecute(ledger, case), MAX_TRIALS).tune(run)
        trials = ledger.trials(run.id)
    finally:
        ledger.close()
    past = [trial_0(case, trials[0].metric)]
    for trial in trials[1:]:
        proposal = make_strategy(name).propose(state_of(case, trial.number, past))
        assert proposal is not None, trial
        assert [tweak_from_json(t) for t in trial.tweaks] == proposal.tweaks
        assert read_json(RunLayout(run.dir).trial(trial.number).dir / PARAMS) == proposal.params
        past.append(Past(trial.number, proposal.tweaks, trial.status, trial.metric, proposal.params))


@every_strategy
@every_case
def test_no_two_trials_of_a_run_train_the_same_code_with_the_same_answers(tmp_path, name, case):
    trained = [
        (source, inputs)
        for _, status, *_, inputs, source in tuned(tmp_path / "run", name, case, parallel=2)
        if status is TrialStatus.SUCCEEDED
    ]
    assert len(trained) == len(set(map(repr, trained)))
