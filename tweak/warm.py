"""Warm start: a new commit of a script starts where its last tuned run ended.

Trial 0 still trains the code as pushed. Then the best trial of the script's last tuned run (its lineage,
:mod:`mlops.lineage`) is proposed first: the same typed tweaks, re-applied to the new source through the
codemods; a tweak that no longer applies (the layer it changed is gone) is dropped and named. The earlier
trials whose changes all still apply seed the strategy (TPE's history, the ladder's position), marked with
the commit they came from. ``warm_start`` off (``--no-warm-start``, ``mlops.toml``, the repository's
``mlops.yaml``) searches from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mlops import lineage, trial_records
from mlops.domain import RunStatus, TrialStatus
from mlops.layout import RunLayout
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.ledger.events import LedgerEventKind, WarmStart
from mlops.progress import Progress
from mlops.project import read_project
from mlops.trial_files import BadTrialFile
from mlops.trial_records import Metrics
from tweak import prompts as prompts_mod
from tweak.codemods import Tweak, TweakNotApplicable, tweak_from_json
from tweak.evidence import curve_of
from tweak.strategies import Past, Proposal, SearchState, Strategy

# How far back the lineage is walked for a tuned run (runs that failed before any tuning are passed over).
LOOK_BACK = 5


@dataclass(frozen=True)
class Reapplied:
    """An earlier trial's tweaks on the new source: those that still apply, what they did, those dropped."""

    tweaks: list[Tweak]
    changes: list[str]  # what the kept tweaks do to the new source, in words
    dropped: list[str]  # "<tweak>: <why it no longer applies>"


@dataclass(frozen=True)
class Warm:
    """What an earlier run of the script gives this one."""

    earlier: RunRecord
    best: Reapplied | None  # its best trial re-applied (None: its best was the code as pushed)
    best_params: dict[str, Any] = field(default_factory=dict)  # the strategy's coordinates of that trial
    seeds: list[Past] = field(default_factory=list)  # its trials whose changes all still apply

    @property
    def commit(self) -> str:
        return self.earlier.commit[:7]

    def note(self) -> str:
        """Where the first proposal comes from: "the best of commit 3f2a91c: filters 8 -> 32, ..."."""
        assert self.best is not None
        note = f"the best of commit {self.commit}: {', '.join(self.best.changes)}"
        if self.best.dropped:
            note += f"; dropped, no longer applies: {'; '.join(self.best.dropped)}"
        return note


def reapply(source: str, tweaks: list[Tweak], framework: str | None) -> Reapplied:
    """``tweaks`` made in order on ``source``; each that does not fit is dropped with its reason."""
    kept: list[Tweak] = []
    changes: list[str] = []
    dropped: list[str] = []
    for tweak in tweaks:
        try:
            done = tweak.edit(source, framework)
        except TweakNotApplicable as e:
            dropped.append(f"{_named(tweak)}: {e.reason}")
            continue
        source = done.source
        kept.append(tweak)
        changes.append(done.description)
    return Reapplied(kept, changes, dropped)


def _named(tweak: Tweak) -> str:
    name, params = tweak.to_json()
    values = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())
    return f"{name} ({values})" if values else str(name)


def tuned_before(ledger: Ledger, run: RunRecord) -> RunRecord | None:
    """The script's latest earlier run that finished with at least one tuned trial measured."""
    earlier = lineage.previous_run(ledger, run)
    for _ in range(LOOK_BACK):
        if earlier is None:
            return None
        if earlier.status is not RunStatus.RUNNING and any(_seedable(t) for t in ledger.trials(earlier.id)):
            return earlier
        earlier = lineage.previous_run(ledger, earlier)
    return None


def _seedable(trial: TrialRecord) -> bool:
    return (
        trial.number > 0
        and trial.status is TrialStatus.SUCCEEDED
        and trial.metric is not None
        and bool(trial.tweaks)
    )


def warm_start(ledger: Ledger, run: RunRecord, original: str) -> Warm | None:
    """What the script's last tuned run gives this run, or None (no such run)."""
    earlier = tuned_before(ledger, run)
    if earlier is None:
        return None
    origin = earlier.commit[:7]
    best: Reapplied | None = None
    best_params: dict[str, Any] = {}
    seeds: list[Past] = []
    for trial in ledger.trials(earlier.id):
        if not _seedable(trial):
            continue
        tweaks = [tweak_from_json(item) for item in trial.tweaks]
        again = reapply(original, tweaks, run.framework)
        past = _past(earlier, trial, tweaks, origin)
        if trial.number == earlier.best_trial:
            best, best_params = again, past.params
        if not again.dropped:
            seeds.append(past)
    return Warm(earlier, best if best and best.tweaks else None, best_params, seeds)


def _past(run: RunRecord, trial: TrialRecord, tweaks: list[Tweak], origin: str) -> Past:
    """An earlier run's trial as a strategy sees it, marked with its commit."""
    folder = RunLayout(run.dir).trial(trial.number).dir
    try:
        params = trial_records.params(folder)
    except BadTrialFile:
        params = {}
    try:
        metrics = trial_records.metrics(folder) or Metrics()
    except BadTrialFile:
        metrics = Metrics()
    curve = curve_of(list(metrics.history))
    return Past(trial.number, tweaks, trial.status, trial.metric, params, curve, origin=origin)


class WarmStarted(Strategy):
    """A strategy whose first proposal is the earlier best, and whose search knows the earlier trials."""

    def __init__(self, inner: Strategy, warm: Warm) -> None:
        self.inner = inner
        self.warm = warm
        self.name = inner.name

    def seeded(self, state: SearchState) -> SearchState:
        return replace(state, earlier=self.warm.seeds)

    def propose(self, state: SearchState) -> Proposal | None:
        best = self.warm.best
        if best is not None and not any(p.tweaks == best.tweaks for p in state.past):
            params = self.warm.best_params
            answers = prompts_mod.new_answers(state.prompts, params)
            lines = prompts_mod.new_lines(state.prompts, params)
            return Proposal(best.tweaks, dict(params), self.warm.note(), answers, lines)
        return self.inner.propose(self.seeded(state))

    def should_prune(self, state: SearchState, curve: list[float]) -> bool:
        return self.inner.should_prune(self.seeded(state), curve)


def warm_strategy(
    ledger: Ledger, progress: Progress, run: RunRecord, strategy: Strategy, original: str
) -> Strategy:
    """``strategy`` warm-started from the script's last tuned run, when there is one and it is wanted."""
    if not run.settings.warm_start or not read_project(run.code_dir).warm_start:
        return strategy
    warm = warm_start(ledger, run, original)
    if warm is None:
        return strategy
    if lineage.warm_from(ledger, run) is None:
        lineage.set_warm_from(ledger, run, warm.earlier)
        ledger.event(
            run.id,
            None,
            LedgerEventKind.WARM_START,
            _said(warm),
            WarmStart(warm.earlier.id, warm.earlier.commit),
        )
        progress.info(f"   {_said(warm)}")
    return WarmStarted(strategy, warm)


def _said(warm: Warm) -> str:
    what = f"warm start from run {warm.earlier.id} (commit {warm.commit}): {len(warm.seeds)} earlier trial(s) seed the search"
    if warm.best is not None:
        what += f"; first: {warm.note()}"
    return what
