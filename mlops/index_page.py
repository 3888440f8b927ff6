"""One page for all runs: ``runs/index.html``, a row per run, newest first, with a link to each report.

Self-contained like the reports (style and a small script inline, no external address), so Jenkins can
publish it and a person can open it from disk. Without its script it is still the whole table, newest
first; with it, buttons filter the rows by status and the date column sorts both ways. The state is kept
in the address (``index.html#status=failed&sort=oldest``), so a filtered view can be linked to.
"""

from __future__ import annotations

import html
import os
import re
import time
from pathlib import Path

from mlops.domain import Kind, RunStatus
from mlops.layout import INDEX_PAGE, RunLayout
from mlops.ledger import Ledger, RunRecord
from mlops.measured import best_label
from mlops.report import BLUE, GREEN, ORANGE, RED
from mlops.script_page import write_script_pages
from mlops_harness.protocol import write_atomic

LABELS = {
    RunStatus.REACHED: "reached",
    RunStatus.EXHAUSTED: "not reached",
    RunStatus.FAILED: "failed",
    RunStatus.RUNNING: "running",
}
COLOURS = {
    RunStatus.REACHED: GREEN,
    RunStatus.EXHAUSTED: ORANGE,
    RunStatus.FAILED: RED,
    RunStatus.RUNNING: BLUE,
}

STYLE = f"""
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1500px;color:#222;
padding:0 1em}}
h1{{margin:0 0 .1em}} .muted{{color:#777}} .small{{font-size:.85em}}
.controls{{display:flex;gap:.5em;flex-wrap:wrap;margin:1em 0;align-items:center}}
.controls button{{font:inherit;border:1px solid #ccc;background:#fff;border-radius:1em;padding:.25em .9em;
cursor:pointer}}
.controls button[aria-pressed=true]{{background:#222;color:#fff;border-color:#222}}
.controls button b{{margin-left:.3em}}
table{{border-collapse:collapse;width:100%;font-size:.9em}}
th,td{{border-bottom:1px solid #eee;padding:.45em .5em;text-align:left;vertical-align:middle}}
th{{background:#fafafa;white-space:nowrap}} td.num{{text-align:right;white-space:nowrap}}
th button{{font:inherit;font-weight:600;border:0;background:none;padding:0;cursor:pointer}}
.nowrap{{white-space:nowrap}} code{{font-family:ui-monospace,monospace;font-size:.95em}}
.status{{display:inline-block;border-radius:1em;padding:.1em .7em;color:#fff;font-size:.85em;
white-space:nowrap}}
{"".join(f".s-{s.value}{{background:{c}}}" for s, c in COLOURS.items())}
.bar{{position:relative;width:80px;height:10px;background:#eceff1;border-radius:5px;display:inline-block;
vertical-align:middle;margin-right:.5em}}
.bar span{{position:absolute;left:0;top:0;bottom:0;border-radius:5px}}
.bar i{{position:absolute;top:-3px;bottom:-3px;width:2px;background:{ORANGE}}}
.fill-hit{{background:{GREEN}}} .fill-miss{{background:{BLUE}}}
.reason{{color:#666;font-size:.85em;min-width:14em;max-width:30em}}
#none{{padding:1em;color:#777}} .scroll{{overflow-x:auto}} a{{color:#1565c0}}
"""

# Filter by status and sort by date, from buttons and from the address (#status=...&sort=...).
SCRIPT = """
(function () {
  var body = document.querySelector("#runs tbody");
  var rows = Array.prototype.slice.call(body.rows);
  var state = {status: "all", sort: "newest"};
  function read() {
    location.hash.slice(1).split("&").forEach(function (pair) {
      var kv = pair.split("=");
      if (kv.length === 2 && kv[0] in state) state[kv[0]] = decodeURIComponent(kv[1]);
    });
  }
  function show() {
    if (!document.querySelector('[data-filter="' + state.status + '"]')) state.status = "all";
    rows.sort(function (a, b) {
      var d = Number(b.dataset.started) - Number(a.dataset.started);
      return state.sort === "oldest" ? -d : d;
    });
    var shown = 0;
    rows.forEach(function (row) {
      var on = state.status === "all" || row.dataset.status === state.status;
      row.hidden = !on;
      if (on) shown += 1;
      body.appendChild(row);
    });
    document.querySelectorAll("[data-filter]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.filter === state.status));
    });
    document.getElementById("sort").textContent = state.sort === "oldest" ? "started \\u2191" : "started \\u2193";
    document.getElementById("shown").textContent = String(shown);
    document.getElementById("none").hidden = shown > 0;
  }
  function go() {
    location.hash = "status=" + encodeURIComponent(state.status) + "&sort=" + state.sort;
    show();
  }
  document.querySelectorAll("[data-filter]").forEach(function (b) {
    b.addEventListener("click", function () { state.status = b.dataset.filter; go(); });
  });
  document.getElementById("sort").addEventListener("click", function () {
    state.sort = state.sort === "oldest" ? "newest" : "oldest";
    go();
  });
  window.addEventListener("hashchange", function () { read(); show(); });
  read();
  show();
})();
"""


def _source(source: str) -> str:
    """A source as short as a person recognises it: ``github.com/you/models`` or the last two folders."""
    url = re.match(r"^(?:[a-z+]+://)?(?:[^@/]+@)?([^/:]+)[:/](.+?)(?:\.git)?/?$", source)
    if url and ("://" in source or "@" in source):
        return f"{url.group(1)}/{url.group(2)}"
    parts = Path(source).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else source


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _bar(run: RunRecord) -> str:
    """The best metric against the target: a bar (green once it reaches the target), a mark at the target."""
    scale = max(1.0, run.target, run.best_metric or 0.0)
    target_at = f'<i style="left:{100 * run.target / scale:.1f}%"></i>'
    metric = html.escape(run.metric or "metric")
    if run.best_metric is None:
        return f'<span class="bar">{target_at}</span><span class="muted">no {metric}</span>'
    fill = 100 * max(0.0, run.best_metric) / scale
    hit = "hit" if run.best_metric >= run.target else "miss"
    return (
        f'<span class="bar"><span class="fill-{hit}" style="width:{fill:.1f}%"></span>{target_at}</span>'
        f'<b>{run.best_metric:.4f}</b> <span class="muted">/ {run.target:g}</span>'
        + ("" if metric == "accuracy" else f' <span class="muted small">{metric}</span>')
    )


def _row(ledger: Ledger, run: RunRecord, runs_dir: Path, now: float, page: Path | None = None) -> str:
    trials = ledger.trials(run.id)
    restarts = sum(t.restarts for t in trials)
    ended = run.finished_at if run.finished_at is not None else now
    took = _duration(ended - run.created_at)  # so far, for a run still going: its status says it is
    day = time.localtime(run.created_at)
    started = time.strftime(
        "%a %d %b %H:%M" if day.tm_year == time.localtime(now).tm_year else "%d %b %Y %H:%M", day
    )
    report = RunLayout(run.dir).report
    name = f"<b>{html.escape(run.script)}</b>"
    if report.exists():  # the run's name opens its report; a run still going has none yet
        href = html.escape(Path(os.path.relpath(report, runs_dir)).as_posix())
        name = f'<a href="{href}" title="the report of run {html.escape(run.id)}">{name}</a>'
    history = ""
    if page is not None:  # the page of the script's commits (mlops/script_page.py)
        href = html.escape(Path(os.path.relpath(page, runs_dir)).as_posix())
        history = f' <a class="small" href="{href}" title="every commit of this script">history</a>'
    # Why a run failed or stopped short; a reached run's reason only repeats its bar.
    shown = run.reason and run.status in (RunStatus.FAILED, RunStatus.EXHAUSTED)
    reason = f'<div class="reason">{html.escape(run.reason or "")}</div>' if shown else ""
    kind = html.escape(run.kind or "?")
    if run.family and run.kind is Kind.OTHER:  # what kind of other: forest, svm, recurrent, ...
        kind += f' <span class="muted">({html.escape(run.family)})</span>'
    kind = f'<span title="{html.escape(run.family or "")}">{kind}</span>'
    metric = run.metric or "metric"
    title = f"best {metric} {run.best_metric:.4f}" if run.best_metric is not None else f"no {metric}"
    label = best_label(run, trials)  # a metric the script never measured says so
    title = html.escape(f"{title} against a target of {run.target:g}" + (f", {label}" if label else ""))
    bar = _bar(run) + (f'<div class="muted small">{html.escape(label)}</div>' if label else "")
    return (
        f'<tr data-status="{run.status.value}" data-started="{run.created_at:.3f}">'
        f'<td><span class="status s-{run.status.value}">{LABELS[run.status]}</span></td>'
        f'<td><span class="nowrap">{name} '
        f'<span class="muted small">{html.escape(run.id)}</span>{history}</span>{reason}</td>'
        f'<td title="{html.escape(run.source)}">{"/<wbr>".join(html.escape(_source(run.source)).split("/"))}</td>'
        f'<td title="{html.escape(run.author or "")}"><code>{html.escape(run.commit[:10])}</code></td>'
        f'<td class="nowrap">{kind}</td>'
        f'<td class="nowrap" title="{title}">{bar}</td>'
        f'<td class="num">{len(trials)} / {run.max_trials}</td>'
        f'<td class="num">{restarts}</td>'
        f'<td class="num">{took}</td>'
        f'<td class="nowrap">{started}</td>'
        "</tr>"
    )


def index_html(
    ledger: Ledger, runs_dir: Path, now: float | None = None, pages: dict[str, Path] | None = None
) -> str:
    """The page of all runs of a ledger, links relative to ``runs_dir`` (where the page is written);
    ``pages``: {run id: the page of its script}, linked from the run's row."""
    now = time.time() if now is None else now
    runs = sorted(ledger.runs(), key=lambda r: r.created_at, reverse=True)
    counts = {status: sum(r.status is status for r in runs) for status in RunStatus}
    buttons = [f'<button data-filter="all" aria-pressed="true">all<b>{len(runs)}</b></button>'] + [
        f'<button data-filter="{s.value}" aria-pressed="false">{LABELS[s]}<b>{counts[s]}</b></button>'
        for s in (RunStatus.REACHED, RunStatus.EXHAUSTED, RunStatus.FAILED, RunStatus.RUNNING)
    ]
    rows = "".join(_row(ledger, run, runs_dir, now, (pages or {}).get(run.id)) for run in runs)
    written = time.strftime("%Y-%m-%d %H:%M", time.localtime(now))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlops: all runs</title>
<style>{STYLE}</style></head><body>
<h1>All runs</h1>
<div class="muted">{len(runs)} runs in {html.escape(str(ledger.path.parent))} · written {
        written
    } · a run's name
opens its report</div>
<div class="controls"><span class="muted">status:</span>{"".join(buttons)}
<span class="muted small">showing <span id="shown">{len(runs)}</span></span></div>
<div class="scroll"><table id="runs"><thead><tr><th>status</th><th>run</th><th>source</th><th>commit</th><th>kind</th>
<th>best against the target</th><th>trials</th><th>restarts</th><th>time</th>
<th><button id="sort" title="sort by date">started &#8595;</button></th></tr></thead>
<tbody>{rows}</tbody></table></div>
<div id="none"{"" if not runs else " hidden"}>No run here{
        " yet: mlops run SOURCE starts one" if not runs else " with this status"
    }.</div>
<script>{SCRIPT}</script>
</body></html>"""


def write_index(ledger: Ledger, runs_dir: Path) -> Path:
    """Write ``<runs_dir>/index.html``, the page of all runs, whole or not at all, and the page of each
    script it links to; return its path."""
    pages = write_script_pages(ledger, runs_dir)
    path = runs_dir / INDEX_PAGE
    write_atomic(path, index_html(ledger, runs_dir, pages=pages))
    return path
