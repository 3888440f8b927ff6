"""``mlops history SCRIPT`` (a script's commits, as its page shows them) and ``mlops compare RUN RUN`` (two
runs side by side: their figures, their best changes, the diff of their best sources)."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from jobs.args import add_common, settings_from
from mlops.errors import LedgerError
from mlops.layout import RunLayout
from mlops.ledger import Ledger, RunRecord
from mlops.lineage import lineage, link
from mlops.progress import Progress, terminal_safe
from mlops.regression import Change, compare
from mlops.script_page import LineageRow, rows_of, scripts_of


def add_parser(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = command(
        "compare",
        "two runs side by side: their metrics, their best changes, the diff of their best sources",
        "mlops compare 1-cnn 2-cnn",
    )
    p.add_argument("runs", nargs=2, metavar="RUN", help="two run ids, as mlops history lists them")
    add_common(p)


def keys_of(ledger: Ledger, script: str) -> list[str]:
    """The script keys a name given on the command line means: a key itself, or a script's path (as a
    run names it, or inside its repository)."""
    keys = scripts_of(ledger)
    if script in keys:
        return [script]
    found: list[str] = []
    for key, run_ids in keys.items():
        for run_id in run_ids:
            run = ledger.run(run_id)
            if script in (run.script, link(ledger, run).path) and key not in found:
                found.append(key)
    if not found:
        raise LedgerError(f"no run of script {script!r} in {ledger.path}: `mlops history` lists the runs")
    return found


def runs_of(ledger: Ledger, script: str) -> list[RunRecord]:
    """The runs of the script (every lineage the name means), oldest first."""
    return [run for key in keys_of(ledger, script) for run in lineage(ledger, key)]


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def _cells(row: LineageRow) -> list[object]:
    run = row.run
    took = f"{row.seconds:.0f}s" if row.seconds is not None else "-"
    return [
        run.id,
        run.commit[:10],
        run.author or "-",
        row.subject,
        _fmt(row.as_pushed),
        _fmt(row.best),
        row.trials,
        took,
        row.verdict.upper() if row.change is Change.REGRESSION else row.verdict,
    ]


def print_lineage(ledger: Ledger, script: str, out: TextIO = sys.stdout) -> int:
    """``mlops history SCRIPT``: one row per commit, oldest first, and what each regression was."""
    progress = Progress(out)
    for key in keys_of(ledger, script):
        rows = rows_of(ledger, key)
        columns = ["run", "commit", "author", "subject", "as pushed", "best", "trials", "time", "verdict"]
        progress.table(key, columns, [_cells(r) for r in rows])
        for row in rows:
            if row.comparison is not None and row.change is Change.REGRESSION:
                out.write(terminal_safe(f"run {row.run.id}: {row.comparison.sentence()}") + "\n")
    return 0


def _best_source(run: RunRecord) -> tuple[str, list[str]]:
    """The run's best source (best.py), or the source as pushed when no trial beat it."""
    best = RunLayout(run.dir).best_source
    path = best if best.is_file() else run.code_dir / run.script
    try:
        return str(path), path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except OSError as e:
        raise LedgerError(f"run {run.id}: cannot read its best source {path}: {e.strerror}") from None


def _figures(ledger: Ledger, run: RunRecord) -> list[str]:
    trials = ledger.trials(run.id)
    best = next((t for t in trials if t.number == run.best_trial), None)
    first = next((t.metric for t in trials if t.number == 0), None)
    comparison = compare(ledger, run)
    return [
        run.script,
        run.commit[:10],
        run.author or "-",
        run.metric or "-",
        _fmt(run.baseline_metric if run.baseline_metric is not None else first),
        _fmt(run.best_metric),
        str(run.best_trial) if run.best_trial is not None else "-",
        f"{len(trials)} / {run.max_trials}",
        run.status.value,
        comparison.change.value if comparison else "-",
        "; ".join(best.changes) if best and best.changes else "as pushed",
    ]


def cmd_compare(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    settings = settings_from(args)
    ledger = Ledger(settings.ledger_path, read_only=True)
    left, right = (ledger.run(run_id) for run_id in args.runs)
    names = ["script", "commit", "author", "metric", "as pushed", "best", "best trial", "trials", "status",
             "vs previous", "best changes"]  # fmt: skip
    rows = [
        [name, a, b]
        for name, a, b in zip(names, _figures(ledger, left), _figures(ledger, right), strict=True)
    ]
    Progress(out).table(f"run {left.id} against run {right.id}", ["", left.id, right.id], rows)
    (left_path, left_lines), (right_path, right_lines) = _best_source(left), _best_source(right)
    diff = list(difflib.unified_diff(left_lines, right_lines, f"{left.id}/{Path(left_path).name}",
                                     f"{right.id}/{Path(right_path).name}"))  # fmt: skip
    out.write("the best sources: " + ("the same\n" if not diff else "\n"))
    out.write("".join(terminal_safe(line.rstrip("\n")) + "\n" for line in diff))
    return 0
