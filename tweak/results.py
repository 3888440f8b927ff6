"""The end of a run: its best trial's source, its diff against what was pushed, the answers and files of
values that gave it, and its model; every file of the trial read through the trial reader, so what a trial
planted in their place (a link, a file of another kind) is refused and said, never copied."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from mlops import trial_records
from mlops.domain import RunStatus, TrialStatus
from mlops.layout import SOURCE, RunLayout
from mlops.ledger import Ledger, LedgerEventKind, RunRecord, TrialRecord
from mlops.model_store import ModelPolicy, publish
from mlops.trial_files import BadTrialFile
from mlops_harness.protocol import write_atomic
from tweak import direction
from tweak.files import keep_best, tuned_files
from tweak.prompts import Prompt, prompts_of


def finish_run(
    ledger: Ledger,
    run: RunRecord,
    original: str,
    status: RunStatus,
    reason: str,
    models: ModelPolicy | None = None,
) -> RunRecord:
    """End a run: its best trial (highest metric, lowest loss; earliest on a tie), ``best.py`` and ``best.diff``
    against the source as pushed, its model in ``model/`` (checked to load when ``models`` has a check),
    the baseline, and the status with its reason."""
    trials = ledger.trials(run.id)
    scored = [t for t in trials if t.status is TrialStatus.SUCCEEDED and t.metric is not None]
    best = direction.best_of(scored)  # the highest metric, the lowest loss; the earliest on a tie
    baseline = trials[0].metric if trials and trials[0].metric is not None else None
    if best is not None and best.metric is not None:
        keep_sources(ledger, run, original, best)
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
            ledger.event(
                run.id, best.number, LedgerEventKind.MODEL_MISSING, f"could not publish the model: {e}"
            )
    ledger.finish_run(run.id, status, reason)
    return ledger.run(run.id)


def keep_sources(ledger: Ledger, run: RunRecord, original: str, best: TrialRecord) -> None:
    """``best.py``, ``best.diff``, the best answers and files of values, beside the run; when the best
    trial's folder does not hold them as mlops wrote them, none is kept and the ledger says why."""
    layout = RunLayout(run.dir)
    folder = layout.trial(best.number).dir
    try:
        source = trial_records.source(folder)
        answers = trial_records.answers(folder)
        if source is None:
            raise BadTrialFile(SOURCE, "is not there")
        keep_best(run.dir, folder, tuned_files(run.code_dir))
    except BadTrialFile as e:
        ledger.event(
            run.id,
            best.number,
            LedgerEventKind.BEST_SOURCE_REFUSED,
            f"the best trial's source is not kept: {e}",
        )
        return
    write_atomic(layout.best_source, source)
    diff = "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True),
            source.splitlines(keepends=True),
            fromfile=f"a/{run.script}",
            tofile=f"b/{run.script}",
        )
    )
    write_atomic(layout.best_diff, diff)
    if answers:
        write_atomic(layout.best_inputs, answers_yaml(answers, prompts_of(layout.trial(0).dir)))


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
