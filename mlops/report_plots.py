"""The figures of a run's report: the metric per trial, the learning curves, the elbow and silhouette of
KMeans, as PNG bytes (matplotlib's Agg backend: no display). Each trial's curves come from its metrics.json
through the trial reader (:mod:`mlops.trial_records`): a trial whose file is not what the harness writes has
no curve (it failed for it, which the report's table says)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlops import trial_records
from mlops.domain import TrialStatus
from mlops.layout import RunLayout
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.trial_files import BadTrialFile
from mlops.trial_records import Metrics, Row, Stop
from mlops_harness.protocol import accuracy_key, describe_stop

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# One colour per meaning, shared by the page and the plots.
GREEN, BLUE, GREY, RED, AMBER, ORANGE = "#2e7d32", "#1565c0", "#90a4ae", "#c62828", "#ef8f00", "#ef6c00"
UNSCORED = {TrialStatus.FAILED: RED, TrialStatus.PRUNED: AMBER, TrialStatus.SKIPPED: GREY}


def _metrics(run: RunRecord, number: int | None) -> Metrics:
    """A trial's metrics.json, checked; empty when it has none or they are not what the harness writes (that
    trial failed for it, which its row says)."""
    if number is None:
        return Metrics()
    try:
        return trial_records.metrics(RunLayout(run.dir).trial(number).dir) or Metrics()
    except BadTrialFile:
        return Metrics()


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
    png = _drawn(_metric_plot, run, ledger.trials(run.id))
    assert png is not None
    return png


def learning_curves_png(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    """Accuracy and loss per epoch, one colour per trial; solid is training, dashed is validation."""
    return _drawn(_learning_curves, run, trials)


def kmeans_png(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    """The elbow (WCSS per k) and the silhouette per k, with the k of each trial and the best one marked."""
    return _drawn(_kmeans, run, trials)


# -- drawn ahead: while the run's model is checked, the report's plots are drawn in a thread ---------------

Draw = Callable[[RunRecord, list[TrialRecord]], "bytes | None"]
_LOCK = threading.Lock()  # pyplot is not safe from two threads at once: one plot drawn at a time
_DRAWN: dict[tuple[Any, ...], bytes | None] = {}  # the plots of the last run drawn ahead, by what they show


def _key(draw: Draw, run: RunRecord, trials: list[TrialRecord]) -> tuple[Any, ...]:
    """Everything of the run a plot shows (its trials, their files under its folder, its best and target)."""
    shown = (run.id, str(run.dir), run.best_trial, run.metric, run.target, run.script)
    return (draw.__name__, shown, repr(trials))


def _drawn(draw: Draw, run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    """The plot as drawn ahead for exactly this run and these trials, else drawn now."""
    key = _key(draw, run, trials)
    with _LOCK:
        if key in _DRAWN:
            return _DRAWN[key]
        return draw(run, trials)


def draw_ahead(run: RunRecord, trials: list[TrialRecord]) -> threading.Thread:
    """Draw the report's plots of a run whose trials are over (its best recorded) in a thread, while its
    model is checked: the report takes them when nothing they show changed meanwhile, else draws again."""

    def draw_all() -> None:
        with _LOCK:
            _DRAWN.clear()
        for draw in (_metric_plot, _learning_curves, _kmeans):
            with _LOCK:
                _DRAWN[_key(draw, run, trials)] = draw(run, trials)

    # Not a daemon: the interpreter waits for it at exit. A daemon thread still inside matplotlib's C++
    # when a quick job ended aborted the process ("terminate called without an active exception").
    thread = threading.Thread(target=draw_all, name="report plots")
    thread.start()
    return thread


def warm_up() -> threading.Thread:
    """Import pyplot and draw a figure in a thread (its first figure loads fonts): a second or two, taken
    while the trials train, not after the last one."""

    def draw() -> None:
        with _LOCK:
            plt = _pyplot()
            fig, _ = plt.subplots(figsize=(1, 1))
            _figure_png(fig)

    thread = threading.Thread(target=draw, name="pyplot warm-up")  # not a daemon: see draw_ahead
    thread.start()
    return thread


def _metric_plot(run: RunRecord, trials: list[TrialRecord]) -> bytes:
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


def lineage_plot_png(
    commits: list[str],
    as_pushed: list[float | None],
    best: list[float | None],
    regressed: list[bool],
    metric: str,
) -> bytes:
    """A script's commits, oldest first: the metric as pushed and the best per commit, as two lines; a
    commit that is a regression against the one before is marked with a red cross."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.3))
    xs = list(range(len(commits)))
    for values, colour, name in ((as_pushed, GREY, "as pushed"), (best, BLUE, "best")):
        shown = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        ax.plot([x for x, _ in shown], [v for _, v in shown], "o-", color=colour, label=name, linewidth=1.6)
    marked = [(x, v) for x, v, r in zip(xs, best, regressed, strict=True) if r and v is not None]
    if marked:
        ax.scatter([x for x, _ in marked], [v for _, v in marked], marker="X", s=120, color=RED, zorder=3,
                   label="regression")  # fmt: skip
    ax.set_xticks(xs or [0])
    ax.set_xticklabels(commits or [""], fontsize=8)
    ax.set_xlabel("commit, oldest first")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per commit", loc="left")
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _figure_png(fig)


def _last_fit(rows: list[Row]) -> list[Row]:
    """The epochs of the last fit call (a script that pre-trains then trains is judged on the last)."""
    last = max(int(r.get("fit") or 0) for r in rows)
    return sorted((r for r in rows if (r.get("fit") or 0) == last), key=lambda r: r.get("epoch") or 0)


def _stop_of(metrics: Metrics, rows: list[Row]) -> Stop | None:
    """The early stop of the fit a trial's curves show (its last), if it stopped before its last epoch."""
    fit = rows[-1].get("fit") or 0
    found = [s for s in metrics.stopped if s.fit == fit]
    return found[-1] if found else None


def _numbers(rows: list[Row], key: str | None) -> list[float] | None:
    """The values of ``key`` in every row, or None when a row lacks it."""
    if not key:
        return None
    values = [r.get(key) for r in rows]
    return [float(v) for v in values if v is not None] if all(v is not None for v in values) else None


def _learning_curves(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    measured = {t.number: _metrics(run, t.number) for t in trials}
    histories = {number: _last_fit(m.history) for number, m in measured.items() if m.history}
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
        epochs = [r.get("epoch") for r in rows]
        acc = accuracy_key(rows[-1])
        val_acc = accuracy_key(rows[-1], "val_")
        for key, ax, style in ((acc, acc_ax, "-"), (val_acc, acc_ax, "--"), ("loss", loss_ax, "-"),
                               ("val_loss", loss_ax, "--")):  # fmt: skip
            values = _numbers(rows, key)
            if values is not None:
                ax.plot(epochs, values, style, color=colour, linewidth=width, alpha=alpha,
                        marker="." if len(rows) < 30 else None)  # fmt: skip
        label = f"trial {number}" + (" (best)" if best else "")
        stop = stops.get(number)
        if stop is not None:  # where the fit stopped, and why, on the curve it watched
            key = val_acc or acc
            at = next((r for r in rows if r.get("epoch") == stop.epoch), None)
            if key and at is not None and at.get(key) is not None:
                acc_ax.plot([stop.epoch], [at[key]], "X", color=colour, markersize=9)
            label += f"\nstopped at epoch {stop.epoch}: {describe_stop(vars(stop))}"
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


def _kmeans(run: RunRecord, trials: list[TrialRecord]) -> bytes | None:
    pushed_kmeans = _metrics(run, 0).kmeans
    curve = pushed_kmeans.curve if pushed_kmeans else None
    if curve is None or not curve.k:
        return None
    ks = {t.number: (m.kmeans.n_clusters if (m := _metrics(run, t.number)).kmeans else None) for t in trials}
    pushed, best = ks.get(0), ks.get(run.best_trial)  # type: ignore[arg-type]
    tried = {k for k in ks.values() if k is not None} - {pushed, best}
    plt = _pyplot()
    fig, (elbow, sil) = plt.subplots(1, 2, figsize=(10, 3.4))
    elbow.plot(curve.k, curve.inertia, marker="o", color=BLUE)
    elbow.set_ylabel("WCSS (inertia)")
    elbow.set_title("elbow: within-cluster sum of squares per k", loc="left")
    sil.plot(curve.k, curve.silhouette, marker="o", color="#6a1b9a")
    sil.set_ylabel("silhouette")
    sil.set_title("silhouette per k (higher is better)", loc="left")
    for ax in (elbow, sil):
        ax.set_xlabel("k (number of clusters)")
        ax.set_xticks(curve.k)
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
