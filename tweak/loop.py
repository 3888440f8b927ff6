"""Jobs 3 to 5 of one run: train trial 0 as pushed, then tweak and train again until the target or the budget.

The loop is resumable: every trial's source is written before the trial is recorded, every state change
is a ledger transaction, and on a restart the loop first finishes the trials that were under way (the
supervisor re-attaches to them or starts them again from their checkpoints), then goes on proposing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlops import trial_records
from mlops.classify.rules import Framework
from mlops.domain import Kind, RunStatus, TrialStatus, trial_seed
from mlops.layout import RunLayout
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.model_store import ModelPolicy, after_trial
from mlops.progress import Progress
from mlops.runtime.base import TrialSpec
from mlops.trial_files import BadTrialFile
from mlops.trial_records import Metrics
from mlops_harness.protocol import (
    CURVE_KEYS,
    EventKind,
    read_json,
    write_atomic,
)
from tweak import direction
from tweak.codemods import Tweak, TweakNotApplicable, apply_tweaks, tweak_from_json
from tweak.evidence import curve_of, generalization_gap, training_losses
from tweak.facts import check_variant, model_facts
from tweak.files import lines_as_prompts, tuned_files, with_copies, write_copies
from tweak.prompts import Prompt, prompts_of
from tweak.results import finish_run
from tweak.stops import Budget, stop_reason
from tweak.strategies import (
    Past,
    Proposal,
    SearchState,
    Strategy,
    make_strategy,
)
from tweak.warm import warm_strategy

# The supervisor's execute(run, trial, spec, prune) -> finished TrialRecord, injected by the jobs layer.
# The prune check asked after each epoch says why to stop the trial, or None to go on.
Execute = Callable[
    [RunRecord, TrialRecord, TrialSpec, Callable[[int, dict[str, float]], str | None] | None], TrialRecord
]
SpecFor = Callable[[RunRecord, int], TrialSpec]
# Starts the process of a trial before it is proposed, to load its libraries meanwhile (None: not needed).
Prestart = Callable[[TrialSpec | None], None]


def base_answers(run: RunRecord) -> list[str]:
    """The answers to the script's input() prompts as pushed (``inputs:`` in its mlops.yaml), as text; the
    run's folder is mlops's own (no trial sees it)."""
    answers = (read_json(RunLayout(run.dir).inputs) or {}).get("answers")
    return [str(a) for a in answers] if isinstance(answers, list) else []


def seconds_per_epoch(folder: Path) -> float | None:
    """The median time between a trial's epochs, from its epoch events (None with fewer than two)."""
    try:
        times = [e.at for e in trial_records.events(folder) if e.kind is EventKind.EPOCH]
    except BadTrialFile:  # that trial failed for it
        return None
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)
    return gaps[len(gaps) // 2] if gaps else None


def _measured(folder: Path) -> tuple[Metrics, dict[str, Any]]:
    """A trial's metrics and its strategy's coordinates, as the reader checks them; empty for a trial whose
    files are not what was written (it failed for it, and says so)."""
    try:
        metrics = trial_records.metrics(folder) or Metrics()
    except BadTrialFile:
        metrics = Metrics()
    try:
        params = trial_records.params(folder)
    except BadTrialFile:
        params = {}
    return metrics, params


class Tuner:
    def __init__(
        self,
        ledger: Ledger,
        progress: Progress,
        execute: Execute,
        spec_for: SpecFor,
        budget: Budget,
        models: ModelPolicy | None = None,
        prestart: Prestart | None = None,
    ) -> None:
        self.ledger = ledger
        self.prestart = prestart
        self.ahead = False  # this tuning goes on to the next trial (not job 3 alone)
        self.progress = progress
        self.execute = execute
        self.spec_for = spec_for
        self.budget = budget
        self.models = models or ModelPolicy()
        # Set when a trial reaches the target: the others of its parallel batch stop at their next epoch.
        self.reached = threading.Event()

    # -- state for the strategy --------------------------------------------------------------------

    def _state(self, run: RunRecord, original: str, number: int) -> SearchState:
        """What a strategy knows: every trial so far (those under way have no metric yet)."""
        past = []
        kmeans = None
        per_epoch = None
        inputs: dict[str, Any] | None = None
        asked: list[Prompt] = []
        trials = self.ledger.trials(run.id)
        for t in trials:
            folder = RunLayout(run.dir).trial(t.number).dir
            metrics, params = _measured(folder)
            if t.number == 0:
                kmeans = asdict(metrics.kmeans) if metrics.kmeans else None
                per_epoch = seconds_per_epoch(folder)
                inputs = asdict(metrics.inputs[-1]) if metrics.inputs else None
                asked = prompts_of(folder) + lines_as_prompts(tuned_files(run.code_dir))
            metric = t.metric if t.status.is_finished() else None
            history: list[dict[str, Any]] = list(metrics.history)
            tweaks = [tweak_from_json(item) for item in t.tweaks]
            gap = generalization_gap(history)
            losses = training_losses(history)
            past.append(Past(t.number, tweaks, t.status, metric, params, curve_of(history), gap, losses))
        return SearchState(
            kind=run.kind or Kind.OTHER,
            framework=run.framework or Framework.NONE,
            facts=model_facts(original, run.framework),
            target=run.target,
            seed=run.settings.seed,
            number=number,
            past=past,
            kmeans=kmeans,
            seconds_per_epoch=per_epoch,
            seconds_left=self._seconds_left(run),
            prompts=asked,
            inputs=inputs,
            lower_is_better=direction.run_lower_is_better(trials),
        )

    def _seconds_left(self, run: RunRecord) -> float | None:
        if self.budget.max_minutes is None:
            return None
        return max(0.0, self.budget.max_minutes * 60 - (time.time() - run.created_at))

    # -- the loop ----------------------------------------------------------------------------------

    def tune(self, run: RunRecord, only_baseline: bool = False) -> RunRecord:
        """Run trials until a stop condition finishes the run (or, with only_baseline, after trial 0)."""
        scored = [t.metric for t in self.ledger.trials(run.id) if t.metric is not None]
        deadline = run.created_at + self.budget.max_minutes * 60 if self.budget.max_minutes else None
        self.progress.run_started(
            run.id, run.target, self.budget.max_trials, deadline, run.metric, max(scored, default=None)
        )
        self.ahead = not only_baseline
        try:
            return self._tune(run, only_baseline)
        finally:
            if self.prestart is not None:
                self.prestart(None)  # a trial started ahead that the run did not need
            if self.models.check_ahead is not None:
                self.models.check_ahead.end(run)  # the model's check, when the run stopped before it
            self.progress.run_ended(run.id)

    def _tune(self, run: RunRecord, only_baseline: bool) -> RunRecord:
        original = RunLayout(run.dir).original.read_text(encoding="utf-8")
        self.reached.clear()
        strategy = make_strategy(run.strategy)
        if not only_baseline:  # the script's last tuned commit: its best first, its trials seed the search
            strategy = warm_strategy(self.ledger, self.progress, run, strategy, original)
        # First finish what a killed orchestrator left under way.
        self._run_all(
            run, [t for t in self.ledger.trials(run.id) if not t.status.is_finished()], strategy, original
        )
        while True:
            trials = self.ledger.trials(run.id)
            stop = stop_reason(run, trials, self.budget)
            if stop:
                if self.prestart is not None:
                    self.prestart(None)  # before the model check and the report: it holds memory
                return self._finish(run, original, *stop)
            number = len(trials)
            if only_baseline and number >= 1:
                return self.ledger.run(run.id)
            if number == 0:
                batch = [self._record(run, 0, original, [], [], {})]
            else:
                batch = []
                width = min(self.budget.parallel, self.budget.max_trials - number)
                for offset in range(width):  # proposals of one batch see each other as under way
                    proposal = strategy.propose(self._state(run, original, number + offset))
                    if proposal is None:
                        break
                    batch.append(self._propose(run, number + offset, original, proposal))
                if not batch:
                    if not any(t.status is TrialStatus.SUCCEEDED for t in trials):
                        last = trials[-1]
                        why = f"no trial produced a metric (trial {last.number}: {last.error})"
                        return self._finish(run, original, RunStatus.FAILED, why)
                    why = f"no tweak left to try for this {run.kind} model ({run.strategy})"
                    return self._finish(run, original, RunStatus.EXHAUSTED, why)
            if self.ahead and self.models.check_ahead is not None:
                self.models.check_ahead.start(run)  # the model's check loads its libraries meanwhile
            self._run_all(run, [t for t in batch if t.status is TrialStatus.PENDING], strategy, original)

    def _run_all(self, run: RunRecord, trials: list[TrialRecord], strategy: Strategy, original: str) -> None:
        if len(trials) <= 1:
            for trial in trials:
                self._run_trial(run, trial, strategy, original)
            return
        with ThreadPoolExecutor(max_workers=len(trials), thread_name_prefix="trial") as pool:
            futures = [pool.submit(self._run_trial, run, t, strategy, original) for t in trials]
            for future in futures:
                future.result()

    def _propose(self, run: RunRecord, number: int, original: str, proposal: Proposal) -> TrialRecord:
        try:
            applied = apply_tweaks(original, proposal.tweaks, run.framework)
        except TweakNotApplicable as e:
            return self._record(run, number, original, proposal.tweaks, [], proposal.params, skipped=str(e))
        answers = base_answers(run)
        asked = {p.index: p for p in prompts_of(RunLayout(run.dir).trial(0).dir)}
        answered = []
        for index, answer in sorted(proposal.inputs.items()):
            prompt = asked.get(index)
            label = prompt.label() if prompt else f"input {index + 1}"
            old = answers[index] if index < len(answers) else "-"
            answered.append(f"answer to {label!r} {old} -> {answer}")
            answers += [""] * (index + 1 - len(answers))
            answers[index] = answer
        files = tuned_files(run.code_dir)
        for file in files:
            for index, value in sorted(proposal.files.get(file.key, {}).items()):
                name = file.names[index]
                answered.append(
                    f"{file.key} line {index + 1} ({name}) {file.lines[index].strip()} -> {value}"
                )
        changes = list(applied.applied) + answered
        changes += [f"(not applied: {name}: {why})" for name, why in applied.skipped]
        if not applied.applied and not answered:
            return self._record(
                run,
                number,
                original,
                proposal.tweaks,
                changes,
                proposal.params,
                skipped="none of the proposed tweaks applies to this code",
            )
        problem = check_variant(applied.source, run.framework)
        if problem:
            return self._record(
                run,
                number,
                applied.source,
                proposal.tweaks,
                changes,
                proposal.params,
                skipped=f"caught before training: {problem}",
            )
        if proposal.note:
            self.progress.info(f"   strategy {run.strategy}: {proposal.note}")
            changes.append(f"why: {proposal.note}")
        return self._record(
            run,
            number,
            applied.source,
            proposal.tweaks,
            changes,
            proposal.params,
            answers=answers,
            values=proposal.files,
        )

    def _record(
        self,
        run: RunRecord,
        number: int,
        source: str,
        tweaks: list[Tweak],
        changes: list[str],
        params: dict[str, Any],
        skipped: str | None = None,
        answers: list[str] | None = None,
        values: dict[str, dict[int, str]] | None = None,
    ) -> TrialRecord:
        folder = RunLayout(run.dir).trial(number)
        write_atomic(folder.source, source)
        write_copies(folder.dir, tuned_files(run.code_dir), values or {})  # each trial reads its own copy
        answers = base_answers(run) if answers is None else answers
        if answers:
            write_atomic(folder.inputs, json.dumps({"answers": answers}))
        write_atomic(folder.params, json.dumps(params, default=str))
        seed = trial_seed(run.settings.seed, number)
        status = TrialStatus.SKIPPED if skipped else TrialStatus.PENDING
        trial = self.ledger.add_trial(
            run.id, number, [t.to_json() for t in tweaks], changes, seed, status, skipped
        )
        if skipped:
            self.progress.trial_finished(run.id, number, "skipped", skipped)
        return trial

    def _run_trial(
        self, run: RunRecord, trial: TrialRecord, strategy: Strategy, original: str
    ) -> TrialRecord:
        spec = with_copies(self.spec_for(run, trial.number), tuned_files(run.code_dir))
        prune = None
        if trial.number > 0:
            state = self._state(run, original, trial.number)
            curve: list[float] = []

            def prune(epoch: int, logs: dict[str, float]) -> str | None:
                if self.reached.is_set():  # another trial of the batch reached the target: the run is done
                    return "another trial of its batch reached the target"
                for key in CURVE_KEYS:
                    if key in logs:
                        curve.append(logs[key])
                        break
                if strategy.should_prune(state, curve):
                    return f"its curve at epoch {epoch} was below the median of the earlier trials'"
                return None

        self._start_next(run, trial.number)
        finished = self.execute(run, trial, spec, prune)
        lower = direction.lower_is_better(finished.metric_name)
        if (
            finished.status is TrialStatus.SUCCEEDED
            and finished.metric is not None
            and direction.reached(finished.metric, run.target, lower)
        ):
            self.reached.set()
        after_trial(RunLayout(run.dir).trial(trial.number).dir, finished, self.models)
        return finished

    def _start_next(self, run: RunRecord, number: int) -> None:
        """Trials one at a time: the next one's process starts with this one, and loads its libraries
        while this one trains. It waits for its source, which this trial's result decides; the runtime
        ends it when the run stops first, or gives it another trial's spec. Not with files of values
        (``tune_file:``), whose copies are mounted: they do not exist before the trial is proposed."""
        if self.prestart is None or not self.ahead or self.budget.parallel != 1:
            return
        if number + 1 >= self.budget.max_trials or tuned_files(run.code_dir):
            return
        self.prestart(self.spec_for(run, number + 1))

    def _finish(self, run: RunRecord, original: str, status: RunStatus, reason: str) -> RunRecord:
        return finish_run(self.ledger, run, original, status, reason, self.models)
