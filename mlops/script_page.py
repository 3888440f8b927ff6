"""A script's page: its lineage, one row per commit, and one plot of the metric as pushed and the best.

``runs/scripts/<name>.html``, linked from the page of all runs (``mlops/index_page.py``); the same rows are
what ``mlops history SCRIPT`` prints (``jobs/lineage_cmd.py``). Self-contained like the reports.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlops.layout import INDEX_PAGE, SCRIPT_PAGES, RunLayout
from mlops.ledger import Ledger, RunRecord
from mlops.lineage import lineage, script_key
from mlops.regression import Change, Comparison, compare
from mlops.report import STYLE
from mlops.report_plots import lineage_plot_png
from mlops_harness.protocol import write_atomic


@dataclass(frozen=True)
class LineageRow:
    """One commit of a script: its run and how it compares with the commit before."""

    run: RunRecord
    subject: str  # the commit's first line
    as_pushed: float | None
    best: float | None
    trials: int
    seconds: float | None
    comparison: Comparison | None

    @property
    def change(self) -> Change | None:
        return self.comparison.change if self.comparison else None

    @property
    def verdict(self) -> str:
        """The run's status, and a regression or an improvement against the commit before."""
        said = self.run.status.value
        if self.change in (Change.REGRESSION, Change.IMPROVEMENT):
            said += f", {self.change}"
        return said


def rows_of(ledger: Ledger, key: str) -> list[LineageRow]:
    """The script's runs, oldest first, as rows."""
    rows = []
    for run in lineage(ledger, key):
        trials = ledger.trials(run.id)
        pulled = ledger.find_pull(run.source, run.commit) or {}
        first = next((t.metric for t in trials if t.number == 0), None)
        took = run.finished_at - run.created_at if run.finished_at is not None else None
        rows.append(
            LineageRow(
                run=run,
                subject=next(iter(str(pulled.get("message") or "").splitlines()), ""),
                as_pushed=run.baseline_metric if run.baseline_metric is not None else first,
                best=run.best_metric,
                trials=len(trials),
                seconds=took,
                comparison=compare(ledger, run),
            )
        )
    return rows


def scripts_of(ledger: Ledger) -> dict[str, list[str]]:
    """{script key: its runs' ids}, for every run of the ledger."""
    keys: dict[str, list[str]] = {}
    for run in ledger.runs():
        keys.setdefault(script_key(ledger, run), []).append(run.id)
    return keys


def page_name(key: str) -> str:
    """A file name for a script key: readable, and unique by a short hash of the whole key."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", key.split(":", 1)[-1]).strip("-.")[:60] or "script"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.html"


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def _row_html(row: LineageRow, folder: Path) -> str:
    run = row.run
    css = {Change.REGRESSION: "regression", Change.IMPROVEMENT: "improvement"}.get(
        row.change or Change.SAME, ""
    )
    title = html.escape(row.comparison.sentence()) if row.comparison else "the script's first commit"
    href = html.escape(Path(os.path.relpath(RunLayout(run.dir).report, folder)).as_posix())
    report = f'<a href="{href}">{html.escape(run.id)}</a>'
    took = f"{row.seconds:.0f} s" if row.seconds is not None else "-"
    return (
        f"<tr><td>{report}</td><td><code>{run.commit[:10]}</code></td><td>{html.escape(run.author or '-')}</td>"
        f'<td>{html.escape(row.subject)}</td><td class="num">{_fmt(row.as_pushed)}</td>'
        f'<td class="num">{_fmt(row.best)}</td><td class="num">{row.trials}</td><td class="num">{took}</td>'
        f'<td class="{css}" title="{title}">{html.escape(row.verdict)}</td></tr>'
    )


def script_page_html(ledger: Ledger, key: str, folder: Path) -> str:
    """The page of one script, links relative to ``folder`` (where it is written)."""
    rows = rows_of(ledger, key)
    metric = next((r.run.metric for r in reversed(rows) if r.run.metric), None) or "metric"
    png = lineage_plot_png(
        [r.run.commit[:7] for r in rows],
        [r.as_pushed for r in rows],
        [r.best for r in rows],
        [r.change is Change.REGRESSION for r in rows],
        metric,
    )
    plot = f'<img alt="{metric} per commit" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
    body = "".join(_row_html(r, folder) for r in reversed(rows))  # newest first, as the page of all runs
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlops: {html.escape(key)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(key)}</h1>
<div class="muted">{len(rows)} commits, newest first · <a href="../{INDEX_PAGE}">all runs</a></div>
<h2>{html.escape(metric)} as pushed and best, per commit</h2>{plot}
<h2>Commits</h2>
<table><tr><th>run</th><th>commit</th><th>author</th><th>subject</th><th>as pushed</th><th>best</th>
<th>trials</th><th>time</th><th>verdict</th></tr>{body}</table>
</body></html>"""


def write_script_pages(ledger: Ledger, runs_dir: Path) -> dict[str, Path]:
    """Write every script's page; {run id: the page of its script}."""
    pages: dict[str, Path] = {}
    for key, run_ids in scripts_of(ledger).items():
        path = runs_dir / SCRIPT_PAGES / page_name(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, script_page_html(ledger, key, path.parent))
        pages.update(dict.fromkeys(run_ids, path))
    return pages
