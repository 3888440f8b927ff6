"""What a person sees of a run: one self-contained HTML report, a metric plot, and JUnit XML for Jenkins
(the figures: ``mlops/report_plots.py``).

The report is one file (plots embedded as PNG, style inline, no external address), so it can be archived
by Jenkins, attached to an email, or opened from disk.
"""

from __future__ import annotations

import base64
import html
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mlops.domain import RunStatus, TrialStatus
from mlops.layout import RunLayout
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.lineage import previous_run, warm_from
from mlops.measured import best_label, metric_label
from mlops.model_store import model_file
from mlops.regression import Change, Comparison, compare, regression_json
from mlops.report_model import model_section, model_verdict
from mlops.report_plots import BLUE, GREEN, ORANGE, RED, kmeans_png, learning_curves_png, metric_plot_png

__all__ = [
    "BLUE",
    "GREEN",
    "ORANGE",
    "RED",
    "learning_curves_png",
    "metric_plot_png",
    "write_report",
]

# XML 1.0 cannot hold these, and a training's error can (ANSI colours from a library's message).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _diff_css(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "ctx")


def _diff_html(diff: str) -> str:
    if not diff.strip():
        return "<p>The best trial is the code as pushed: nothing was changed.</p>"
    lines = [f'<span class="{_diff_css(line)}">{html.escape(line)}</span>' for line in diff.splitlines()]
    return '<pre class="diff">' + "\n".join(lines) + "</pre>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.verdict{font-size:1.25em;padding:.7em 1em;border-radius:6px;margin:1em 0}
.verdict .why{font-size:.75em;color:#555;margin-top:.3em}
.regression{color:#c62828;font-weight:600}.improvement{color:#2e7d32;font-weight:600}
.reached{background:#e8f5e9;border-left:6px solid #2e7d32}.exhausted{background:#fff3e0;border-left:6px solid #ef6c00}
.failed,.running{background:#ffebee;border-left:6px solid #c62828}
.figures{display:flex;gap:1em;flex-wrap:wrap;margin:.6em 0 0}.figures div{flex:1 1 0;min-width:6.5em}
.figures b{display:block;font-size:1.5em}.figures span{color:#666;font-size:.85em}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{border-bottom:1px solid #eee;padding:.35em .6em;
text-align:left;vertical-align:top}th{background:#fafafa}td.num{white-space:nowrap;text-align:right}
tr.best{background:#f1f8e9;font-weight:600}
.st-succeeded{color:#2e7d32}.st-failed{color:#c62828;font-weight:600}.st-pruned{color:#b26a00}
.st-skipped,.st-pending,.muted{color:#777}.st-running{color:#1565c0}
.err{color:#c62828;font-family:ui-monospace,monospace;font-size:.9em}.note{color:#777;font-size:.9em}
pre.diff{background:#fafafa;border:1px solid #eee;padding:.8em;overflow-x:auto;font-size:.88em}
.add{color:#1b5e20;background:#e8f5e9;display:inline-block;width:100%}
.del{color:#b71c1c;background:#ffebee;display:inline-block;width:100%}.hunk{color:#6a1b9a}.file{color:#555}
img{max-width:100%;margin:.5em 0}
"""

HEADS = {
    RunStatus.REACHED: "Target reached",
    RunStatus.EXHAUSTED: "Target not reached",
    RunStatus.FAILED: "Run failed",
    RunStatus.RUNNING: "Still running",
}


def _verdict(run: RunRecord, trials: list[TrialRecord]) -> str:
    metric = html.escape(run.metric or "metric")
    why = f'<div class="why">{html.escape(run.reason)}</div>' if run.reason else ""
    if run.best_metric is None:
        return f"<b>{HEADS[run.status]}</b>: no trial produced a {metric}.{why}"
    baseline = trials[0].metric if trials and trials[0].metric is not None else None
    if baseline is None:
        lift = " (the code as pushed produced no metric)"
    elif run.best_trial == 0 or run.best_metric <= baseline:
        lift = ", the code as pushed: no tweak did better"
    else:
        lift = f", up <b>{run.best_metric - baseline:+.4f}</b> from {baseline:.4f} as pushed"
    label = best_label(run, trials)
    how = f", {html.escape(label)}" if label else ""
    return (
        f"<b>{HEADS[run.status]}</b>: best {metric} <b>{run.best_metric:.4f}</b> (trial {run.best_trial}{how}) "
        f"against a target of {run.target:g}{lift}.{why}"
    )


def _against_previous(comparison: Comparison | None) -> str:
    """The verdict's line on the script's previous commit: a regression, an improvement, or the same."""
    if comparison is None:
        return ""
    css = {Change.REGRESSION: "regression", Change.IMPROVEMENT: "improvement"}.get(comparison.change, "muted")
    head = {Change.REGRESSION: "Regression", Change.IMPROVEMENT: "Improvement"}.get(comparison.change, "")
    said = comparison.sentence()
    text = f"<b>{head}</b>{html.escape(said[len(head) :])}" if head else html.escape(said)
    return f'<div class="why {css}">{text}</div>'


def _figures(run: RunRecord, trials: list[TrialRecord]) -> str:
    def fmt(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "-"

    baseline = trials[0].metric if trials else None
    lift = run.best_metric - baseline if run.best_metric is not None and baseline is not None else None
    seconds = sum(t.duration_s or 0 for t in trials)
    failed = sum(t.status is TrialStatus.FAILED for t in trials)
    cells = [
        (fmt(run.best_metric), f"best {html.escape(run.metric or 'metric')}"),
        (f"{run.target:g}", "target"),
        (fmt(baseline), "as pushed"),
        (f"{lift:+.4f}" if lift is not None else "-", "lift from tuning"),
        (f"{len(trials)}", f"trials ({failed} failed)" if failed else "trials"),
        (f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s", "training time"),
        (f"{sum(t.restarts for t in trials)}", "restarts"),
    ]
    return (
        '<div class="figures">'
        + "".join(f"<div><b>{v}</b><span>{k}</span></div>" for v, k in cells)
        + "</div>"
    )


def _row(run: RunRecord, t: TrialRecord) -> str:
    changes = "<br>".join(html.escape(c) for c in t.changes) or '<span class="muted">as pushed</span>'
    if t.error and t.status is TrialStatus.FAILED:
        where = f"{t.error_file}:{t.error_line}: " if t.error_line else ""
        cls = f"[{t.failure_class}] " if t.failure_class else ""
        changes += f'<br><span class="err">{html.escape(cls + where + t.error)}</span>'
        if t.hint:
            changes += f'<br><span class="note">{html.escape(t.hint)}</span>'
    elif t.error:  # why a trial was skipped or pruned
        changes += f'<br><span class="note">{html.escape(t.error)}</span>'
    elif t.hint:  # a trial that succeeded, with a warning
        changes += f'<br><span class="note">{html.escape(t.hint)}</span>'
    best = t.number == run.best_trial
    metric = f"{t.metric:.4f}" if t.metric is not None else "-"
    label = metric_label(t.metric_source) if t.metric is not None else None
    if label:
        metric += f'<br><span class="note">{html.escape(label)}</span>'
    duration = f"{t.duration_s:.1f} s" if t.duration_s is not None else "-"
    return (
        f'<tr class="{"best" if best else ""}"><td class="num">{t.number}{" ★" if best else ""}</td>'
        f'<td>{changes}</td><td class="num">{metric}</td><td class="st-{t.status.value}">{t.status.value}</td>'
        f'<td class="num">{duration}</td><td class="num">{t.epochs or "-"}</td><td class="num">{t.restarts}</td></tr>'
    )


def write_report(ledger: Ledger, run_id: str) -> Path:
    """Write ``<run dir>/report.html``, one self-contained page on the run, and return its path."""
    run = ledger.run(run_id)
    trials = ledger.trials(run.id)
    diff_file = RunLayout(run.dir).best_diff
    diff = diff_file.read_text(encoding="utf-8") if diff_file.exists() else ""
    environment = [
        ("source", run.source),
        ("ref", run.ref or "-"),
        ("commit", run.commit),
        ("author", run.author or "-"),
        ("script", run.script),
        ("kind", f"{run.kind} ({run.family}, {run.framework})"),
        ("image", run.image or "-"),
        ("runtime", run.runtime or "-"),
        ("strategy", run.strategy),
        ("seed", str(run.settings.seed)),
        ("budget", f"{run.max_trials} trials"),
        ("started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))),
        ("run folder", str(run.dir)),
    ]
    env_rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in environment)
    sections = [
        ("Metric per trial", _img(metric_plot_png(ledger, run.id), "metric per trial")),
        ("Learning curves", _img(learning_curves_png(run, trials), "learning curves")),
        ("Choosing k: elbow and silhouette", _img(kmeans_png(run, trials), "elbow and silhouette")),
    ]
    plots = "".join(f"<h2>{title}</h2>{img}" for title, img in sections if img)
    best_what = f"trial {run.best_trial}" if run.best_trial is not None else "no trial"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlops run {html.escape(run.id)}</title>
<style>{STYLE}</style></head><body>
<h1>Run {html.escape(run.id)}: {html.escape(run.script)}</h1>
<div class="muted">{html.escape(run.kind or "?")} model from {html.escape(run.source)} at {run.commit[:12]}
by {html.escape(run.author or "?")}</div>
<div class="verdict {run.status.value}">{_verdict(run, trials)}{_against_previous(compare(ledger, run))}{model_verdict(run)}{_figures(run, trials)}</div>
<h2>Trials</h2>
<table><tr><th>trial</th><th>what changed</th><th>{html.escape(run.metric or "metric")}</th><th>status</th>
<th>time</th><th>epochs</th><th>restarts</th></tr>{"".join(_row(run, t) for t in trials)}</table>
{model_section(run)}
{plots}
<h2>What won: the source of {best_what} against what was pushed</h2>{_diff_html(diff)}
<h2>Environment</h2><table>{env_rows}</table>
</body></html>"""
    path = RunLayout(run.dir).report
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def _xml_text(text: str, limit: int | None = None) -> str:
    text = _NOT_XML.sub("?", text)
    return text[:limit] if limit else text


def write_junit(ledger: Ledger, run_id: str) -> Path:
    """Write ``<run dir>/junit.xml``: the target check as one test case and each trial as one.

    Jenkins's junit step reads it: a target not reached is a failure, a failed trial an error (with its
    file and line), a skipped or pruned trial (or one that never finished) is skipped.
    """
    run = ledger.run(run_id)
    trials = ledger.trials(run.id)
    suites = ET.Element("testsuites", name="mlops")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"mlops.{run.id}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(run.created_at)),
    )
    failures = int(not _target_case(suite, run))
    comparison = compare(ledger, run)
    if comparison is not None:
        failures += _regression_case(suite, run, comparison)
    cases = [_trial_case(suite, run, t) for t in trials]
    errors, skipped = cases.count("error"), cases.count("skipped")
    total_time = sum(t.duration_s or 0 for t in trials)
    for element in (suite, suites):
        element.set("tests", str(len(trials) + 1 + (comparison is not None)))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("time", f"{total_time:.3f}")
    suite.set("skipped", str(skipped))
    path = RunLayout(run.dir).junit
    tmp = path.with_name(f".{path.name}.tmp")
    ET.ElementTree(suites).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path


def _target_case(suite: ET.Element, run: RunRecord) -> bool:
    """The target check as a test case; True when the target was reached."""
    target = ET.SubElement(suite, "testcase", classname=f"mlops.{run.id}", name="target reached", time="0")
    best = f"{run.best_metric:.4f}" if run.best_metric is not None else "none"
    if run.status is not RunStatus.REACHED:
        ET.SubElement(
            target,
            "failure",
            message=_xml_text(f"best {run.metric or 'metric'} {best} < target {run.target:g}"),
            type="TargetNotReached",
        ).text = _xml_text(run.reason or "")
        return False
    ET.SubElement(target, "system-out").text = f"best {run.metric} {best} >= target {run.target:g}"
    return True


def _trial_case(suite: ET.Element, run: RunRecord, t: TrialRecord) -> str:
    """One trial as a test case; what JUnit counts it as: "error", "skipped", or "" (it passed)."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"mlops.{run.id}.trials",
        name=_xml_text(f"trial {t.number}: {'; '.join(t.changes) or 'as pushed'}", 300),
        time=f"{t.duration_s or 0:.3f}",
    )
    if t.status is TrialStatus.FAILED:
        where = f"{t.error_file}:{t.error_line}: " if t.error_line else ""
        error = ET.SubElement(
            case,
            "error",
            message=_xml_text(where + (t.error or "failed"), 500),
            type=t.end_reason or "error",
        )
        error.text = _xml_text(f"{where}{t.error}\nlog: {RunLayout(run.dir).trial(t.number).log}")
        return "error"
    if t.status in (TrialStatus.SKIPPED, TrialStatus.PRUNED) or not t.status.is_finished():
        ET.SubElement(case, "skipped", message=_xml_text(f"{t.status.value}: {t.error or ''}".rstrip(": ")))
        return "skipped"
    if t.metric is not None:
        ET.SubElement(case, "system-out").text = f"{t.metric_name} {t.metric:.4f}"
    return ""


def _regression_case(suite: ET.Element, run: RunRecord, comparison: Comparison) -> int:
    """The comparison with the script's previous commit as one test case: a regression is a failure, so
    Jenkins marks the build unstable. Returns the failures it adds (0 or 1)."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"mlops.{run.id}",
        name=f"no regression against run {comparison.previous}",
        time="0",
    )
    if comparison.regressed:
        ET.SubElement(
            case, "failure", message=_xml_text(comparison.sentence()), type="Regression"
        ).text = _xml_text(comparison.sentence())
        return 1
    ET.SubElement(case, "system-out").text = _xml_text(comparison.sentence())
    return 0


def run_summary(ledger: Ledger, run: RunRecord) -> dict[str, Any]:
    trials = ledger.trials(run.id)
    report = RunLayout(run.dir).report
    return {
        "run": run.id,
        "source": run.source,
        "commit": run.commit,
        "script": run.script,
        "kind": run.kind,
        "framework": run.framework,
        "image": run.image,
        "runtime": run.runtime,
        "strategy": run.strategy,
        "metric": run.metric,
        "target": run.target,
        "baseline_metric": run.baseline_metric,
        "best_metric": run.best_metric,
        "best_metric_label": best_label(run, trials),
        "best_trial": run.best_trial,
        "reached": run.status is RunStatus.REACHED,
        "status": run.status.value,
        "reason": run.reason,
        "trials": len(trials),
        "restarts": sum(t.restarts for t in trials),
        "warm_from": seeded.id if (seeded := warm_from(ledger, run)) else None,  # warm start (tweak/warm.py)
        # Against the script's previous commit (mlops/regression.py): its run, what changed, a regression.
        "previous": before.id if (before := previous_run(ledger, run)) else None,
        "change": comparison.change.value if (comparison := compare(ledger, run)) else None,
        "comparison": comparison.sentence() if comparison else None,
        "regression": regression_json(comparison),
        "report": str(report) if report.exists() else None,
        "model": str(model) if (model := model_file(run)) else None,
        "dir": str(run.dir),
    }


def notification(ledger: Ledger, run_id: str) -> dict[str, Any]:
    """What a notification says of a run: its summary, its trials, the diff, the report and the plot."""
    run = ledger.run(run_id)
    summary = run_summary(ledger, run)
    summary["trials"] = [
        {
            "number": t.number,
            "status": t.status.value,
            "metric": t.metric,
            "changes": t.changes,
            "duration_s": t.duration_s,
            "restarts": t.restarts,
        }
        for t in ledger.trials(run.id)
    ]
    layout = RunLayout(run.dir)
    diff = layout.best_diff
    summary["diff"] = diff.read_text(encoding="utf-8") if diff.exists() else ""
    plot = layout.plot
    plot.write_bytes(metric_plot_png(ledger, run.id))
    summary["plot_png"] = str(plot)
    summary["report_path"] = summary["report"]
    return summary
