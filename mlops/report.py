"""What a person sees of a run: one self-contained HTML report, a metric plot, and JUnit XML for Jenkins.

The report is one file (plots embedded as PNG, style inline, no external address), so it can be archived
by Jenkins, attached to an email, or opened from disk.
"""

from __future__ import annotations

import base64
import html
import io
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlops.domain import RunStatus, TrialStatus
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.measured import best_label, metric_label
from mlops.model_store import model_file
from mlops.report_model import model_section, model_verdict
from mlops_harness.protocol import LOG_FILE, METRICS_FILE, accuracy_key, describe_stop, read_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT = "report.html"
JUNIT = "junit.xml"
PLOT = "metric.png"

# One colour per meaning, shared by the page and the plots.
GREEN, BLUE, GREY, RED, AMBER, ORANGE = "#2e7d32", "#1565c0", "#90a4ae", "#c62828", "#ef8f00", "#ef6c00"
UNSCORED = {TrialStatus.FAILED: RED, TrialStatus.PRUNED: AMBER, TrialStatus.SKIPPED: GREY}
# XML 1.0 cannot hold these, and a training's error can (ANSI colours from a library's message).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _metrics(run: RunRecord, number: int | None) -> dict[str, Any]:
    if number is None:
        return {}
    return read_json(run.dir / "trials" / str(number) / METRICS_FILE) or {}


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # no display on a build agent; the figures only become PNG bytes
    import matplotlib.pyplot as plt

    return plt


def _figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _bar_colour(t: TrialRecord, run: RunRecord) -> str:
    if t.metric is None:
        return UNSCORED.get(t.status, GREY)
    if t.metric >= run.target:
        return GREEN
    return BLUE if t.number == run.best_trial else GREY


def metric_plot_png(ledger: Ledger, run_id: str) -> bytes:
    """The metric of every trial as a bar, against the target line; the best bar is coloured."""
    run = ledger.run(run_id)
    trials = ledger.trials(run.id)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.3))
    scored = [t.metric for t in trials if t.metric is not None]
    low = min([0.0, *scored]) - (0.05 if min([0.0, *scored]) < 0 else 0)  # an r2 can be negative
    high = max([1.0, run.target, *scored]) + 0.12
    for t in trials:
        colour = _bar_colour(t, run)
        if t.metric is None:
            # No bar to draw: say why at the foot of the column, in the status colour.
            ax.text(t.number, low + 0.03, t.status.value, ha="center", va="bottom", color=colour, fontsize=8)
            continue
        edge = "black" if t.number == run.best_trial else colour
        ax.bar(t.number, t.metric, color=colour, edgecolor=edge, linewidth=1.2, width=0.7)
        label = f"{t.metric:.3f}" + (" best" if t.number == run.best_trial else "")
        ax.text(t.number, t.metric + 0.015, label, ha="center", va="bottom", fontsize=8)
    ax.axhline(run.target, color=ORANGE, linestyle="--", linewidth=1.3)
    ax.text(1.0, run.target, f" target {run.target:g}", transform=ax.get_yaxis_transform(), color=ORANGE,
            va="center", ha="left", fontsize=9)  # fmt: skip
    ax.set_xticks([t.number for t in trials] or [0])
    ax.set_xlim(-0.6, max(len(trials), 1) - 0.4)
    ax.set_ylim(low, high)
    ax.set_xlabel("trial (0 = the code as pushed)")
    ax.set_ylabel(run.metric or "metric")
    ax.set_title(f"{run.script}: {run.metric or 'metric'} per trial", loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _figure_png(fig)


def _last_fit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The epochs of the last fit call (a script that pre-trains then trains is judged on the last)."""
    last = max(r.get("fit", 0) for r in rows)
    return sorted((r for r in rows if r.get("fit", 0) == last), key=lambda r: r["epoch"])


def _stop_of(metrics: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The early stop of the fit a trial's curves show (its last), if it stopped before its last epoch."""
    fit = rows[-1].get("fit", 0)
    found = [s for s in metrics.get("stopped") or [] if isinstance(s, dict) and s.get("fit", 0) == fit]
    return found[-1] if found and isinstance(found[-1].get("epoch"), int) else None


def learning_curves_png(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    """Accuracy and loss per epoch, one colour per trial; solid is training, dashed is validation."""
    measured = {t.number: _metrics(run, t.number) for t in trials}
    histories = {number: _last_fit(rows) for number, m in measured.items() if (rows := m.get("history"))}
    stops = {number: _stop_of(measured[number], rows) for number, rows in histories.items()}
    if not histories:
        return None
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    tab10 = plt.get_cmap("tab10")
    palette = [tab10(i) for i in (0, 2, 4, 5, 6, 8, 9, 7)]  # not orange (the target) nor red (failure)
    handles = []
    for i, (number, rows) in enumerate(histories.items()):
        colour = palette[i % len(palette)]
        best = number == run.best_trial
        width, alpha = (2.6, 1.0) if best else (1.3, 0.75)
        epochs = [r["epoch"] for r in rows]
        acc = accuracy_key(rows[-1])
        val_acc = accuracy_key(rows[-1], "val_")
        for key, ax, style in ((acc, acc_ax, "-"), (val_acc, acc_ax, "--"), ("loss", loss_ax, "-"),
                               ("val_loss", loss_ax, "--")):  # fmt: skip
            if key and all(key in r for r in rows):
                ax.plot(epochs, [r[key] for r in rows], style, color=colour, linewidth=width, alpha=alpha,
                        marker="." if len(rows) < 30 else None)  # fmt: skip
        label = f"trial {number}" + (" (best)" if best else "")
        stop = stops.get(number)
        if stop is not None:  # where the fit stopped, and why, on the curve it watched
            key = val_acc or acc
            at = next((r for r in rows if r["epoch"] == stop["epoch"]), None)
            if key and at is not None and key in at:
                acc_ax.plot([stop["epoch"]], [at[key]], "X", color=colour, markersize=9)
            label += f"\nstopped at epoch {stop['epoch']}: {describe_stop(stop)}"
        handles.append(Line2D([], [], color=colour, linewidth=width, label=label))
    if (run.metric or "accuracy") == "accuracy":
        acc_ax.axhline(run.target, color=ORANGE, linestyle=":", linewidth=1.2)
        handles.append(Line2D([], [], color=ORANGE, linestyle=":", label=f"target {run.target:g}"))
    handles += [
        Line2D([], [], color="black", linestyle="-", label="training"),
        Line2D([], [], color="black", linestyle="--", label="validation"),
    ]
    acc_ax.set_title("accuracy per epoch", loc="left")
    loss_ax.set_title("loss per epoch", loc="left")
    for ax in (acc_ax, loss_ax):
        ax.set_xlabel("epoch")
        ax.spines[["top", "right"]].set_visible(False)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    fig.tight_layout()
    return _figure_png(fig)


def kmeans_png(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    """The elbow (WCSS per k) and the silhouette per k, with the k of each trial and the best one marked."""
    curve = (_metrics(run, 0).get("kmeans") or {}).get("curve")
    if not curve or not curve.get("k"):
        return None
    ks = {t.number: (_metrics(run, t.number).get("kmeans") or {}).get("n_clusters") for t in trials}
    pushed, best = ks.get(0), ks.get(run.best_trial)  # type: ignore[arg-type]
    tried = {k for k in ks.values() if k is not None} - {pushed, best}
    plt = _pyplot()
    fig, (elbow, sil) = plt.subplots(1, 2, figsize=(10, 3.4))
    elbow.plot(curve["k"], curve["inertia"], marker="o", color=BLUE)
    elbow.set_ylabel("WCSS (inertia)")
    elbow.set_title("elbow: within-cluster sum of squares per k", loc="left")
    sil.plot(curve["k"], curve["silhouette"], marker="o", color="#6a1b9a")
    sil.set_ylabel("silhouette")
    sil.set_title("silhouette per k (higher is better)", loc="left")
    for ax in (elbow, sil):
        ax.set_xlabel("k (number of clusters)")
        ax.set_xticks(curve["k"])
        ax.spines[["top", "right"]].set_visible(False)
        for k in sorted(tried):
            ax.axvline(k, color=GREY, linestyle=":", linewidth=1, label="tried" if k == min(tried) else None)
        if pushed is not None and pushed != best:
            ax.axvline(pushed, color=RED, linestyle="--", linewidth=1.3, label=f"as pushed: k={pushed}")
        if best is not None:
            ax.axvline(best, color=GREEN, linewidth=2.4, alpha=0.8,
                       label=f"best: k={best} (trial {run.best_trial})")  # fmt: skip
    sil.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _figure_png(fig)


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


def _figures(run: RunRecord, trials: list[TrialRecord]) -> str:
    def fmt(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "-"

    baseline = trials[0].metric if trials else None
    lift = run.best_metric - baseline if run.best_metric is not None and baseline is not None else None
    seconds = sum(t.duration_s or 0 for t in trials)
    failed = sum(t.status is TrialStatus.FAILED for t in trials)
    cells = [
        (fmt(run.best_metric), f"best {run.metric or 'metric'}"),
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
    diff_file = run.dir / "best.diff"
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
        ("seed", str(run.settings.get("seed", 0))),
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
<div class="verdict {run.status.value}">{_verdict(run, trials)}{model_verdict(run)}{_figures(run, trials)}</div>
<h2>Trials</h2>
<table><tr><th>trial</th><th>what changed</th><th>{html.escape(run.metric or "metric")}</th><th>status</th>
<th>time</th><th>epochs</th><th>restarts</th></tr>{"".join(_row(run, t) for t in trials)}</table>
{model_section(run)}
{plots}
<h2>What won: the source of {best_what} against what was pushed</h2>{_diff_html(diff)}
<h2>Environment</h2><table>{env_rows}</table>
</body></html>"""
    path = run.dir / REPORT
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
    failures = errors = skipped = 0
    target = ET.SubElement(suite, "testcase", classname=f"mlops.{run.id}", name="target reached", time="0")
    best = f"{run.best_metric:.4f}" if run.best_metric is not None else "none"
    if run.status is not RunStatus.REACHED:
        failures += 1
        ET.SubElement(
            target,
            "failure",
            message=_xml_text(f"best {run.metric or 'metric'} {best} < target {run.target:g}"),
            type="TargetNotReached",
        ).text = _xml_text(run.reason or "")
    else:
        ET.SubElement(target, "system-out").text = f"best {run.metric} {best} >= target {run.target:g}"
    for t in trials:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"mlops.{run.id}.trials",
            name=_xml_text(f"trial {t.number}: {'; '.join(t.changes) or 'as pushed'}", 300),
            time=f"{t.duration_s or 0:.3f}",
        )
        if t.status is TrialStatus.FAILED:
            errors += 1
            where = f"{t.error_file}:{t.error_line}: " if t.error_line else ""
            error = ET.SubElement(
                case,
                "error",
                message=_xml_text(where + (t.error or "failed"), 500),
                type=t.end_reason or "error",
            )
            error.text = _xml_text(f"{where}{t.error}\nlog: {run.dir / 'trials' / str(t.number) / LOG_FILE}")
        elif t.status in (TrialStatus.SKIPPED, TrialStatus.PRUNED) or not t.status.is_finished():
            skipped += 1
            ET.SubElement(
                case, "skipped", message=_xml_text(f"{t.status.value}: {t.error or ''}".rstrip(": "))
            )
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
    tmp = path.with_name(f".{path.name}.tmp")
    ET.ElementTree(suites).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
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
        "best_metric_label": best_label(run, trials),
        "best_trial": run.best_trial,
        "reached": run.status is RunStatus.REACHED,
        "status": run.status.value,
        "reason": run.reason,
        "trials": len(trials),
        "restarts": sum(t.restarts for t in trials),
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
    diff = run.dir / "best.diff"
    summary["diff"] = diff.read_text(encoding="utf-8") if diff.exists() else ""
    plot = run.dir / PLOT
    plot.write_bytes(metric_plot_png(ledger, run.id))
    summary["plot_png"] = str(plot)
    summary["report_path"] = summary["report"]
    return summary
