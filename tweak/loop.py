"""Jobs 3 to 5 of one run: train trial 0 as pushed, then tweak and train again until the target or the budget.

The loop is resumable: every trial's source is written before the trial is recorded, every state change
is a ledger transaction, and on a restart the loop first finishes the trials that were under way (the
supervisor re-attaches to them or starts them again from their checkpoints), then goes on proposing.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.domain import Kind, RunStatus, TrialStatus, trial_seed
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.model_store import ModelPolicy, after_trial, publish
from mlops.progress import Progress
from mlops.runtime.base import TrialSpec
from mlops.trial import NO_TWEAK_FIXES
from mlops_harness.protocol import (
    CURVE_KEYS,
    EVENTS_FILE,
    INPUTS_FILE,
    METRICS_FILE,
    EventKind,
    read_events,
    read_json,
    write_atomic,
)
from tweak.codemods import Tweak, TweakNotApplicable, apply_tweaks, tweak_from_json
from tweak.evidence import curve_of, generalization_gap, training_losses
from tweak.facts import check_variant, model_facts
from tweak.files import keep_best, lines_as_prompts, tuned_files, with_copies, write_copies
from tweak.prompts import Prompt, prompts_of
from tweak.strategies import (
    Past,
    Proposal,
    SearchState,
    Strategy,
    make_strategy,
)

ORIGINAL = "original.py"
SOURCE = "source.py"
PARAMS = "params.json"
BEST_INPUTS = "best.inputs.yaml"
FAILURES_IN_A_ROW = 3

# The supervisor's execute(run, trial, spec, prune) -> finished TrialRecord, injected by the jobs layer.
# The prune check asked after each epoch says why to stop the trial, or None to go on.
Execute = Callable[
    [RunRecord, TrialRecord, TrialSpec, Callable[[int, dict[str, float]], str | None] | None], TrialRecord
]
SpecFor = Callable[[RunRecord, int], TrialSpec]
# Starts the process of a trial before it is proposed, to load its libraries meanwhile (None: not needed).
Prestart = Callable[[TrialSpec | None], None]


def trial_dir(run: RunRecord, number: int) -> Path:
    return run.dir / "trials" / str(number)


def base_answers(run: RunRecord) -> list[str]:
    """The answers to the script's input() prompts as pushed (``inputs:`` in its mlops.yaml), as text."""
    answers = (read_json(run.dir / INPUTS_FILE) or {}).get("answers")
    return [str(a) for a in answers] if isinstance(answers, list) else []


def seconds_per_epoch(folder: Path) -> float | None:
    """The median time between a trial's epochs, from its epoch events (None with fewer than two)."""
    times = [e.at for e in read_events(folder / EVENTS_FILE) if e.kind is EventKind.EPOCH]
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)
    return gaps[len(gaps) // 2] if gaps else None


# -- stop conditions, each a callback like optuna's MaxTrialsCallback -------------------------------


@dataclass(frozen=True)
class Budget:
    target: float
    max_trials: int
    max_minutes: float | None
    parallel: int = 1


def as_pushed_cannot_run(first: TrialRecord) -> str | None:
    """Why no tweak of the model can make trial 0 (the code as pushed) run, when it failed so; else None.
    The run then ends there, and no tuning trial is proposed to fail the same way."""
    if first.status is not TrialStatus.FAILED:
        return None
    error = first.error or ""
    if first.error_line and "SyntaxError" in error:
        return f"the code as pushed does not parse: {error}"
    hint = f"; {first.hint}" if first.hint else ""
    if error.startswith("NameError"):  # a fragment's imports, a notebook's cells: no tweak defines them
        return f"the code as pushed uses a name it never defines: {error}{hint}"
    if (
        first.failure_class in NO_TWEAK_FIXES
    ):  # a missing module, old library code, data, a download, a prompt
        where = f" ({first.error_file}:{first.error_line})" if first.error_line else ""
        return f"the code as pushed cannot run here [{first.failure_class}]: {first.error}{where}{hint}"
    return None


def stop_reason(run: RunRecord, trials: list[TrialRecord], budget: Budget) -> tuple[RunStatus, str] | None:
    done = [t for t in trials if t.status.is_finished()]
    scored = [(t.metric, t) for t in done if t.metric is not None and t.status is TrialStatus.SUCCEEDED]
    best_metric, best = max(scored, key=lambda pair: pair[0], default=(None, None))
    if best is not None and best_metric is not None and best_metric >= budget.target:
        return RunStatus.REACHED, f"trial {best.number} reached {best_metric:.4f} >= target {budget.target:g}"
    broken = as_pushed_cannot_run(trials[0]) if trials else None
    if broken is not None:
        return RunStatus.FAILED, broken
    tail = done[-FAILURES_IN_A_ROW:]
    if len(tail) == FAILURES_IN_A_ROW and all(t.status is TrialStatus.FAILED for t in tail) and not scored:
        return RunStatus.FAILED, f"{FAILURES_IN_A_ROW} trials failed in a row and none produced a metric"
    if len(trials) >= budget.max_trials and not scored and done:
        last = done[-1]
        what = (
            f"[{last.failure_class}] {last.error}"
            if last.failure_class
            else (last.error or last.status.value)
        )
        return RunStatus.FAILED, f"no trial produced a metric (trial {last.number}: {what})"
    if len(trials) >= budget.max_trials:
        what = f"best {best_metric:.4f}" if best_metric is not None else "no metric"
        return (
            RunStatus.EXHAUSTED,
            f"{budget.max_trials} trials used, {what}, target {budget.target:g} not reached",
        )
    if budget.max_minutes is not None and time.time() - run.created_at > budget.max_minutes * 60:
        return RunStatus.EXHAUSTED, f"the wall-time budget of {budget.max_minutes:g} min is used"
    return None


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
        for t in self.ledger.trials(run.id):
            folder = trial_dir(run, t.number)
            metrics = read_json(folder / METRICS_FILE) or {}
            if t.number == 0:
                kmeans = metrics.get("kmeans")
                per_epoch = seconds_per_epoch(folder)
                seen = metrics.get("inputs") or []
                inputs = seen[-1] if seen and isinstance(seen[-1], dict) else None
                asked = prompts_of(folder) + lines_as_prompts(tuned_files(run.code_dir))
            params = read_json(folder / PARAMS) or {}
            metric = t.metric if t.status.is_finished() else None
            history = metrics.get("history") or []
            tweaks = [tweak_from_json(item) for item in t.tweaks]
            gap = generalization_gap(history)
            losses = training_losses(history)
            past.append(Past(t.number, tweaks, t.status, metric, params, curve_of(history), gap, losses))
        return SearchState(
            kind=Kind(run.kind or "other"),
            framework=run.framework or "",
            facts=model_facts(original),
            target=run.target,
            seed=int(run.settings.get("seed", 0)),
            number=number,
            past=past,
            kmeans=kmeans,
            seconds_per_epoch=per_epoch,
            seconds_left=self._seconds_left(run),
            prompts=asked,
            inputs=inputs,
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
            self.progress.run_ended(run.id)

    def _tune(self, run: RunRecord, only_baseline: bool) -> RunRecord:
        original = (run.dir / ORIGINAL).read_text(encoding="utf-8")
        self.reached.clear()
        strategy = make_strategy(run.strategy)
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
            applied = apply_tweaks(original, proposal.tweaks)
        except TweakNotApplicable as e:
            return self._record(run, number, original, proposal.tweaks, [], proposal.params, skipped=str(e))
        answers = base_answers(run)
        asked = {p.index: p for p in prompts_of(trial_dir(run, 0))}
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
        problem = check_variant(applied.source)
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
        folder = trial_dir(run, number)
        write_atomic(folder / SOURCE, source)
        write_copies(folder, tuned_files(run.code_dir), values or {})  # each trial reads its own copy
        answers = base_answers(run) if answers is None else answers
        if answers:
            write_atomic(folder / INPUTS_FILE, json.dumps({"answers": answers}))
        write_atomic(folder / PARAMS, json.dumps(params, default=str))
        seed = trial_seed(int(run.settings.get("seed", 0)), number)
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
        if (
            finished.status is TrialStatus.SUCCEEDED
            and finished.metric is not None
            and finished.metric >= run.target
        ):
            self.reached.set()
        after_trial(trial_dir(run, trial.number), finished, self.models)
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


def finish_run(
    ledger: Ledger,
    run: RunRecord,
    original: str,
    status: RunStatus,
    reason: str,
    models: ModelPolicy | None = None,
) -> RunRecord:
    """End a run: its best trial (highest metric, earliest on a tie), ``best.py`` and ``best.diff``
    against the source as pushed, its model in ``model/`` (checked to load when ``models`` has a check),
    the baseline, and the status with its reason."""
    trials = ledger.trials(run.id)
    scored = [t for t in trials if t.status is TrialStatus.SUCCEEDED and t.metric is not None]
    best = max(scored, key=lambda t: (t.metric or 0.0, -t.number), default=None)
    baseline = trials[0].metric if trials and trials[0].metric is not None else None
    if best is not None and best.metric is not None:
        best_source = (trial_dir(run, best.number) / SOURCE).read_text(encoding="utf-8")
        write_atomic(run.dir / "best.py", best_source)
        diff = "".join(
            difflib.unified_diff(
                original.splitlines(keepends=True),
                best_source.splitlines(keepends=True),
                fromfile=f"a/{run.script}",
                tofile=f"b/{run.script}",
            )
        )
        write_atomic(run.dir / "best.diff", diff)
        best_answers = (read_json(trial_dir(run, best.number) / INPUTS_FILE) or {}).get("answers")
        if best_answers:
            write_atomic(run.dir / BEST_INPUTS, answers_yaml(best_answers, prompts_of(trial_dir(run, 0))))
        keep_best(run.dir, trial_dir(run, best.number), tuned_files(run.code_dir))
        ledger.update_run(
            run.id,
            f"best trial {best.number}: {best.metric:.4f}",
            best_trial=best.number,
            best_metric=best.metric,
            baseline_metric=baseline,
            metric=best.metric_name,
        )
        try:  # before the run is finished: one that dies while publishing publishes again when resumed
            publish(ledger, ledger.run(run.id), best, models or ModelPolicy())
        except OSError as e:  # a full disk: the run keeps its result, and says why it has no model
            ledger.event(run.id, best.number, "model-missing", f"could not publish the model: {e}")
    ledger.finish_run(run.id, status, reason)
    return ledger.run(run.id)


def answers_yaml(answers: list[Any], asked: list[Prompt]) -> str:
    """The best trial's answers as an mlops.yaml ``inputs:`` block, each with its prompt as a comment."""
    prompt_of = {p.index: p.text.strip() for p in asked}
    lines = [
        "# The answers to the script's input() prompts that gave the best model, for mlops.yaml.",
        "inputs:",
    ]
    for index, answer in enumerate(answers):
        text = str(answer)
        value = text if re.fullmatch(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?", text) else json.dumps(text)
        comment = f"  # {prompt_of[index]}" if index in prompt_of else ""
        lines.append(f"  - {value}{comment}")
    return "\n".join(lines) + "\n"
