"""What a person sees of a run: one self-contained HTML report, a metric plot, and JUnit XML for Jenkins.

The report is one file (plots embedded as PNG, style inline, no external address), so it can be archived
by Jenkins, attached to an email, or opened from disk.
"""

from __future__ import annotations

import base64
import html
import io
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mlops.domain import RunStatus, TrialStatus
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.runtime.base import METRICS_FILE, read_json

REPORT = "report.html"
JUNIT = "junit.xml"
PLOT = "metric.png"


def _metrics(run: RunRecord, number: int) -> dict[str, Any]:
    return read_json(run.dir / "trials" / str(number) / METRICS_FILE) or {}


def _figure_png(fig) -> bytes:  # noqa: ANN001
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_plot_png(ledger: Ledger, run_id: str) -> bytes:
    """The metric of every trial against the target line."""
    run = ledger.run(run_id)
    trials = ledger.trials(run.id)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    numbers = [t.number for t in trials]
    values = [t.metric if t.metric is not None else 0.0 for t in trials]
    colors = [
        "#2e7d32" if (t.metric or 0) >= run.target else ("#c62828" if t.metric is None else "#90a4ae")
        for t in trials
    ]
    ax.bar(numbers, values, color=colors)
    ax.axhline(run.target, color="#ef6c00", linestyle="--", label=f"target {run.target:g}")
    for n, t in zip(numbers, trials, strict=True):
        label = f"{t.metric:.3f}" if t.metric is not None else t.status.value
        ax.text(n, (t.metric or 0) + 0.02, label, ha="center", fontsize=8)
    ax.set_xticks(numbers)
    ax.set_xlabel("trial")
    ax.set_ylabel(run.metric or "metric")
    ax.set_ylim(0, 1.1)
    ax.set_title(f"{run.script}: {run.metric or 'metric'} per trial")
    ax.legend(loc="lower right")
    return _figure_png(fig)


def learning_curves_png(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    histories = {t.number: _metrics(run, t.number).get("history") or [] for t in trials}
    if not any(histories.values()):
        return None
    plt = _pyplot()
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    for number, rows in histories.items():
        if not rows:
            continue
        last_fit = max(r.get("fit", 0) for r in rows)
        rows = sorted((r for r in rows if r.get("fit", 0) == last_fit), key=lambda r: r["epoch"])
        epochs = [r["epoch"] for r in rows]
        for key, ax, style in (
            ("accuracy", acc_ax, "-"),
            ("val_accuracy", acc_ax, "--"),
            ("loss", loss_ax, "-"),
            ("val_loss", loss_ax, "--"),
        ):
            if all(key in r for r in rows):
                ax.plot(epochs, [r[key] for r in rows], style, marker=".", label=f"trial {number} {key}")
    acc_ax.set_title("accuracy per epoch")
    loss_ax.set_title("loss per epoch")
    for ax in (acc_ax, loss_ax):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    return _figure_png(fig)


def kmeans_png(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    curve = (_metrics(run, 0).get("kmeans") or {}).get("curve") if trials else None
    if not curve or not curve.get("k"):
        return None
    chosen = {(_metrics(run, t.number).get("kmeans") or {}).get("n_clusters") for t in trials if t.number}
    best_k = (_metrics(run, run.best_trial).get("kmeans") or {}).get("n_clusters") if run.best_trial else None
    plt = _pyplot()
    fig, (elbow, sil) = plt.subplots(1, 2, figsize=(10, 3.2))
    elbow.plot(curve["k"], curve["inertia"], marker="o")
    elbow.set_title("elbow: within-cluster sum of squares")
    sil.plot(curve["k"], curve["silhouette"], marker="o", color="#6a1b9a")
    sil.set_title("silhouette per k")
    for ax in (elbow, sil):
        ax.set_xlabel("k")
        for k in chosen - {None}:
            ax.axvline(k, color="#2e7d32" if k == best_k else "#90a4ae", linestyle="--")
    return _figure_png(fig)


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _diff_html(diff: str) -> str:
    if not diff.strip():
        return "<p>The best trial is the code as pushed: nothing was changed.</p>"
    lines = []
    for line in diff.splitlines():
        css = (
            "add"
            if line.startswith("+") and not line.startswith("+++")
            else (
                "del"
                if line.startswith("-") and not line.startswith("---")
                else ("hunk" if line.startswith("@@") else "")
            )
        )
        lines.append(f'<span class="{css}">{html.escape(line)}</span>')
    return '<pre class="diff">' + "\n".join(lines) + "</pre>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.verdict{font-size:1.3em;padding:.7em 1em;border-radius:6px;margin:1em 0}
.reached{background:#e8f5e9;border-left:6px solid #2e7d32}.exhausted{background:#fff3e0;border-left:6px solid #ef6c00}
.failed,.running{background:#ffebee;border-left:6px solid #c62828}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{border-bottom:1px solid #eee;padding:.35em .6em;
text-align:left;vertical-align:top}th{background:#fafafa}tr.best{background:#f1f8e9;font-weight:600}
.succeeded{color:#2e7d32}.failedt{color:#c62828}.muted{color:#777}
pre.diff{background:#fafafa;border:1px solid #eee;padding:.8em;overflow-x:auto;font-size:.85em}
.add{color:#1b5e20;background:#e8f5e9;display:inline-block;width:100%}
.del{color:#b71c1c;background:#ffebee;display:inline-block;width:100%}.hunk{color:#6a1b9a}
img{max-width:100%;margin:.5em 0}
"""


def _verdict(run: RunRecord, trials: list[TrialRecord]) -> str:
    metric = run.metric or "metric"
    if run.best_metric is None:
        return f"No trial produced a {metric}. {html.escape(run.reason or '')}"
    baseline = trials[0].metric if trials and trials[0].metric is not None else None
    lift = (
        f", up from {baseline:.4f} as pushed ({run.best_metric - baseline:+.4f})"
        if baseline is not None
        else ""
    )
    head = {
        RunStatus.REACHED: "Target reached",
        RunStatus.EXHAUSTED: "Target not reached",
        RunStatus.FAILED: "Run failed",
        RunStatus.RUNNING: "Still running",
    }[run.status]
    return (
        f"<b>{head}</b>: best {metric} <b>{run.best_metric:.4f}</b> (trial {run.best_trial}) against a "
        f"target of {run.target:g}{lift}, in {len(trials)} trials."
    )


def write_report(ledger: Ledger, run_id: str) -> Path:
    run = ledger.run(run_id)
    trials = ledger.trials(run.id)
    rows = []
    for t in trials:
        metric = f"{t.metric:.4f}" if t.metric is not None else "-"
        changes = "<br>".join(html.escape(c) for c in t.changes) or '<span class="muted">as pushed</span>'
        error = ""
        if t.error:
            where = f" ({html.escape(t.error_file or '')}:{t.error_line})" if t.error_line else ""
            error = f'<br><span class="failedt">{html.escape(t.error)}{where}</span>'
        css = "best" if t.number == run.best_trial else ""
        status_css = "succeeded" if t.status is TrialStatus.SUCCEEDED else "failedt"
        duration = f"{t.duration_s:.1f} s" if t.duration_s is not None else "-"
        rows.append(
            f'<tr class="{css}"><td>{t.number}</td><td>{changes}{error}</td><td>{metric}</td>'
            f'<td class="{status_css}">{t.status.value}</td><td>{duration}</td><td>{t.epochs or "-"}</td>'
            f"<td>{t.restarts}</td></tr>"
        )
    diff = (run.dir / "best.diff").read_text(encoding="utf-8") if (run.dir / "best.diff").exists() else ""
    environment = [
        ("source", run.source),
        ("commit", run.commit),
        ("author", run.author or "-"),
        ("script", run.script),
        ("kind", f"{run.kind} ({run.family}, {run.framework})"),
        ("image", run.image or "-"),
        ("runtime", run.runtime or "-"),
        ("strategy", run.strategy),
        ("seed", str(run.settings.get("seed", 0))),
        ("started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))),
        ("run folder", str(run.dir)),
    ]
    env_rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in environment)
    plots = [
        _img(metric_plot_png(ledger, run.id), "metric per trial"),
        _img(learning_curves_png(run, trials), "learning curves"),
        _img(kmeans_png(run, trials), "elbow and silhouette"),
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlops run {html.escape(run.id)}</title>
<style>{STYLE}</style></head><body>
<h1>Run {html.escape(run.id)}: {html.escape(run.script)}</h1>
<div class="muted">{html.escape(run.source)} at {run.commit[:12]}, {html.escape(run.kind or "?")} model</div>
<div class="verdict {run.status.value}">{_verdict(run, trials)}</div>
<h2>Trials</h2>
<table><tr><th>trial</th><th>what changed</th><th>{html.escape(run.metric or "metric")}</th><th>status</th>
<th>time</th><th>epochs</th><th>restarts</th></tr>{"".join(rows)}</table>
<h2>Metric and learning curves</h2>{"".join(plots)}
<h2>What won: the best source against what was pushed</h2>{_diff_html(diff)}
<h2>Environment</h2><table>{env_rows}</table>
</body></html>"""
    path = run.dir / REPORT
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def write_junit(ledger: Ledger, run_id: str) -> Path:
    """JUnit XML: the target check as one test case, each trial as one; Jenkins's junit step reads it."""
    run = ledger.run(run_id)
    trials = ledger.trials(run.id)
    suites = ET.Element("testsuites", name="mlops")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"mlops.{run.id}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(run.created_at)),
    )
    failures = errors = skipped = 0
    target = ET.SubElement(suite, "testcase", classname=f"mlops.{run.id}", name="target reached", time="0")
    if run.status is not RunStatus.REACHED:
        failures += 1
        best = f"{run.best_metric:.4f}" if run.best_metric is not None else "none"
        ET.SubElement(
            target,
            "failure",
            message=f"best {run.metric} {best} < target {run.target:g}",
            type="TargetNotReached",
        ).text = run.reason or ""
    for t in trials:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"mlops.{run.id}.trials",
            name=f"trial {t.number}: {'; '.join(t.changes) or 'as pushed'}",
            time=f"{t.duration_s or 0:.3f}",
        )
        if t.status is TrialStatus.FAILED:
            errors += 1
            where = f" at {t.error_file}:{t.error_line}" if t.error_line else ""
            ET.SubElement(
                case, "error", message=(t.error or "failed")[:500], type=t.end_reason or "error"
            ).text = f"{t.error}{where}"
        elif t.status in (TrialStatus.SKIPPED, TrialStatus.PRUNED):
            skipped += 1
            ET.SubElement(case, "skipped", message=t.error or t.status.value)
        elif t.metric is not None:
            ET.SubElement(case, "system-out").text = f"{t.metric_name} {t.metric:.4f}"
    total_time = sum(t.duration_s or 0 for t in trials)
    for element in (suite, suites):
        element.set("tests", str(len(trials) + 1))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("time", f"{total_time:.3f}")
    suite.set("skipped", str(skipped))
    path = run.dir / JUNIT
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path


def run_summary(ledger: Ledger, run: RunRecord) -> dict[str, Any]:
    trials = ledger.trials(run.id)
    report = run.dir / REPORT
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
        "best_trial": run.best_trial,
        "reached": run.status is RunStatus.REACHED,
        "status": run.status.value,
        "reason": run.reason,
        "trials": len(trials),
        "restarts": sum(t.restarts for t in trials),
        "report": str(report) if report.exists() else None,
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
    diff = run.dir / "best.diff"
    summary["diff"] = diff.read_text(encoding="utf-8") if diff.exists() else ""
    plot = run.dir / PLOT
    plot.write_bytes(metric_plot_png(ledger, run.id))
    summary["plot_png"] = str(plot)
    summary["report_path"] = summary["report"]
    return summary
