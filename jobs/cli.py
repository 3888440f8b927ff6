"""The ``mlops`` command: it reads argv, and its error boundary (``jobs.args.guarded``) turns MlopsError
into one line and an exit code.

It sits in ``jobs/`` because it composes every layer (the tuner, the monitor, the core), and it is a leaf:
nothing imports it. The flags it shares with the six Jenkins entry points are in ``jobs/args.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from jobs import datasets_cmd, lineage_cmd, serve_cmd
from jobs.args import (
    HelpFormatter,
    Parser,
    add_common,
    add_run_flags,
    example,
    guarded,
    settings_from,
    version,
)
from mlops.config import read_environment
from mlops.domain import RunStatus
from mlops.envsafe import RedactingFilter
from mlops.errors import LedgerError
from mlops.index_page import write_index
from mlops.layout import RunLayout
from mlops.ledger import Ledger
from mlops.measured import UNMEASURED_LABELS, metric_label
from mlops.model_store import check_summary, copy_out, human, model_file, read_card, workspace_space
from mlops.progress import Progress, terminal_safe
from mlops.pull import failed_pulls
from mlops.report import run_summary
from mlops_harness.protocol import MODEL_CARD, ModelFormat


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="Push model code, get a tuned model back.",
        epilog=example("mlops run https://github.com/you/models.git --target 0.9"),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mlops {version()}", help="print the version")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do, one of:", parser_class=Parser
    )

    def command(name: str, summary: str, line: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=summary, description=summary, epilog=example(line), formatter_class=HelpFormatter
        )

    p = command(
        "run",
        "the whole chain on a git URL or local path",
        "mlops run models/ --runtime local --max-minutes 30",
    )
    p.add_argument(
        "source",
        help="a git URL, or a local repository, folder or file inside one (what is committed is trained)",
    )
    p.add_argument("--ref", help="branch, tag or commit (default: what is checked out, or HEAD)")
    p.add_argument(
        "--new-run",
        action="store_true",
        help="train again even if this commit was tuned (default: print its earlier result)",
    )
    add_common(p)
    add_run_flags(p)

    p = command(
        "classify", "what each file trains, from its syntax tree", "mlops classify models/cnn.py models/"
    )
    p.add_argument("paths", nargs="+", help="Python files, notebooks, or folders of them")
    p.add_argument("--json", action="store_true", help="one JSON object per file (default: a table)")

    p = command(
        "history",
        "every run: one line (or JSON object) each, or the page of all runs; or one script's commits",
        "mlops history models/cnn.py",
    )
    p.add_argument(
        "script",
        nargs="?",
        metavar="SCRIPT",
        help="a script's path: one row per commit of it, regressions said (default: every run)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per run (default: a table)")
    p.add_argument(
        "--html",
        action="store_true",
        help="write the page of all runs (runs/index.html in the workspace) and print its path",
    )
    add_common(p)

    p = command("show", "one run: its trials, best source and files", "mlops show 3-cnn")
    p.add_argument("run", help="the run's id, as mlops history lists it")
    p.add_argument("--json", action="store_true", help="the run and its trials as JSON (default: a table)")
    add_common(p)

    p = command(
        "model",
        "a run's trained model: where it is and how to load it, or a copy of it (--to)",
        "mlops model 3-cnn --to ./model",
    )
    p.add_argument("run", help="the run's id, as mlops history lists it")
    p.add_argument(
        "--to",
        type=Path,
        metavar="FOLDER",
        help="copy the model file and its card model.json into this folder (default: print where they are)",
    )
    add_common(p)

    lineage_cmd.add_parser(command)
    serve_cmd.add_parsers(command)

    p = command("images", "build or list the training images", "mlops images build mlops-sklearn")
    p.add_argument(
        "action",
        choices=["build", "list"],
        help="build what is missing or out of date, or list each image's state",
    )
    p.add_argument("names", nargs="*", help="the images (default: all that have a Dockerfile)")
    p.add_argument(
        "--force", action="store_true", help="build even when up to date (default: only what changed)"
    )

    datasets_cmd.add_parser(command)

    p = command(
        "monitor",
        "job 6: restart dead trainings of this workspace",
        "mlops monitor --once --workspace .mlops",
    )
    p.add_argument("--once", action="store_true", help="check once and exit (default: keep checking)")
    p.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between checks (default 2)"
    )
    add_common(p)
    add_run_flags(p)
    return parser


# -- history and show -------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    settings = settings_from(args)
    ledger = Ledger(settings.ledger_path, read_only=True)  # --html writes the page, never the ledger
    if args.html:  # written afresh: it also shows runs still going, or carried on by job 6
        out.write(f"{write_index(ledger, settings.runs_dir)}\n")
        return 0
    if args.script and not args.json:
        return lineage_cmd.print_lineage(ledger, args.script, out)
    runs = lineage_cmd.runs_of(ledger, args.script) if args.script else ledger.runs()
    failures = failed_pulls(ledger)
    if args.json:
        for run in runs:
            out.write(json.dumps(run_summary(ledger, run)) + "\n")
        for failure in failures:
            out.write(json.dumps({"run": None, "status": "pull-failed", **failure}) + "\n")
        return 0
    labels: set[str] = set()
    rows = [_history_row(run_summary(ledger, run), labels) for run in runs]
    Progress(out).table(
        "runs",
        HISTORY_COLUMNS,
        rows,
    )
    for i, label in enumerate(sorted(UNMEASURED_LABELS.values()), start=1):
        if label in labels:
            out.write(f"{'*' * i} {label}\n")
    for failure in failures:
        at = failure.get("commit") or failure.get("ref") or "HEAD"
        out.write(terminal_safe(f"pull failed: {failure['source']} at {at}: {failure.get('reason')}") + "\n")
    space = workspace_space(settings.workspace)
    out.write(
        f"space: {settings.workspace} uses {human(space['total'])} (models {human(space['models'])}, "
        f"checkpoints {human(space['checkpoints'])}, checkouts {human(space['checkouts'])}, "
        f"repository mirrors {human(space['repos'])})\n"
    )
    return 0


HISTORY_COLUMNS = ("run", "script", "commit", "kind", "runtime", "status", "best", "target", "trials",
                   "restarts", "vs previous")  # fmt: skip


def _history_row(s: dict[str, Any], labels: set[str]) -> list[object]:
    """One run's row of ``mlops history``; a metric the script never measured is marked, its label kept
    in ``labels`` to be said once below the table."""
    best = f"{s['best_metric']:.4f}" if s["best_metric"] is not None else "-"
    if s["best_metric_label"]:
        labels.add(s["best_metric_label"])
        best += "*" * (sorted(UNMEASURED_LABELS.values()).index(s["best_metric_label"]) + 1)
    return [s["run"], s["script"], s["commit"][:10], s["kind"], s["runtime"], s["status"], best,
            f"{s['target']:g}", s["trials"], s["restarts"], s["change"] or "-"]  # fmt: skip


def cmd_show(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    settings = settings_from(args)
    ledger = Ledger(settings.ledger_path, read_only=True)
    run = ledger.run(args.run)
    summary = run_summary(ledger, run)
    trials = ledger.trials(run.id)
    layout = RunLayout(run.dir)
    if args.json:
        summary["trial_list"] = [
            {
                "number": t.number,
                "status": t.status.value,
                "metric": t.metric,
                "metric_name": t.metric_name,
                "metric_source": t.metric_source,
                "metric_label": metric_label(t.metric_source),
                "changes": t.changes,
                "tweaks": t.tweaks,
                "restarts": t.restarts,
                "end_reason": t.end_reason,
                "error": t.error,
                "error_file": t.error_file,
                "error_line": t.error_line,
                "failure_class": t.failure_class,
                "hint": t.hint,
                "epochs": t.epochs,
                "duration_s": t.duration_s,
                "dir": str(layout.trial(t.number).dir),
            }
            for t in trials
        ]
        summary["best_source"] = str(layout.best_source) if layout.best_source.exists() else None
        summary["best_diff"] = str(layout.best_diff) if layout.best_diff.exists() else None
        summary["model_card"] = read_card(run)
        out.write(json.dumps(summary, indent=2) + "\n")
        return 0
    from jobs.pipeline import Context, leaderboard, model_line

    progress = Progress(out)
    leaderboard(Context(settings, ledger, progress), run)
    for path in (layout.report, layout.best_source, layout.best_diff):
        if path.exists():
            out.write(f"{path.name}: {path}\n")
    model_line(progress, run, read_card(run))
    failed = [t for t in trials if t.error]
    for t in failed:
        where = f" ({t.error_file}:{t.error_line})" if t.error_line else ""
        what = f"[{t.failure_class}] " if t.failure_class else ""
        out.write(terminal_safe(f"trial {t.number}: {what}{t.error}{where}") + "\n")
        if t.hint:
            out.write(terminal_safe(f"   hint: {t.hint}") + "\n")
    return 0


def cmd_model(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Where a run's model is and how to load it, or (--to) a copy of it and its card in a folder."""
    settings = settings_from(args)
    ledger = Ledger(settings.ledger_path)
    if args.to is not None:
        for copied in copy_out(ledger, args.run, args.to):
            out.write(f"{copied}\n")
        return 0
    run = ledger.run(args.run)
    card, path = read_card(run), model_file(run)
    if card is None or path is None:
        why = (card or {}).get("error") or "no trial produced a metric, or it ran before mlops saved models"
        raise LedgerError(f"run {run.id} has no model: {why}")
    _, loaded = check_summary(card)
    out.write(f"{path}\n")
    out.write(terminal_safe(f"  {card['class']} ({card['framework']}), {card['metric']['name']} "
                            f"{card['metric']['value']:.4f}, trial {card['trial']['number']}; {loaded}") + "\n")  # fmt: skip
    out.write(f"  load it: {ModelFormat(card['format']).load_code(str(path))}\n")
    weights = card.get("state_dict") or {}
    if weights.get("file"):  # a PyTorch model's weights, for the script's own class
        out.write(f"  state_dict: {path.parent / weights['file']} (torch.load(..., weights_only=True))\n")
    out.write(f"  card: {path.parent / MODEL_CARD}\n")
    return 0


# -- run, classify, monitor ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from jobs.pipeline import run_source

    settings = settings_from(args)
    runs = run_source(settings, args.source, args.ref, new_run=args.new_run)
    failed = [r for r in runs if r.status is RunStatus.FAILED]
    for run in failed:
        print(terminal_safe(f"mlops: run {run.id} failed: {run.reason}"), file=sys.stderr)
    return 1 if failed else 0


def cmd_classify(args: argparse.Namespace) -> int:
    from jobs.views import print_classifications
    from mlops.classify import classify_paths

    return print_classifications(classify_paths(args.paths), args.json)


def cmd_monitor(args: argparse.Namespace) -> int:
    from jobs.pipeline import Context, step_monitor

    return step_monitor(Context.open(settings_from(args)), once=args.once, interval_s=args.interval)


def cmd_images(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from mlops import images
    from mlops.runtime.docker import DockerRuntime

    runtime = DockerRuntime.from_env(Path(".mlops"))
    names = args.names or [str(i) for i in images.buildable()]
    rows = []
    for name in names:
        if args.action == "build":

            def say(line: str) -> None:
                out.write(line + "\n")

            tag, built = runtime.build(name, force=args.force, say=say)
        else:
            tag, built = images.tag(name), False
        present = runtime.image_present(tag)
        size_bytes = runtime.image_size(tag)
        size = f"{size_bytes / 1e6:.0f} MB" if size_bytes is not None else "-"
        rows.append([name, tag, "built now" if built else ("up to date" if present else "not built"), size])
    Progress(out).table("training images", ["image", "tag", "state", "size"], rows)
    return 0


COMMANDS = {
    "run": cmd_run,
    "classify": cmd_classify,
    "history": cmd_history,
    "show": cmd_show,
    "model": cmd_model,
    "monitor": cmd_monitor,
    "images": cmd_images,
    "datasets": datasets_cmd.cmd_datasets,
    "compare": lineage_cmd.cmd_compare,
    "serve": serve_cmd.cmd_serve,
    "watch": serve_cmd.cmd_watch,
}


def _logging() -> None:
    """What mlops logs (webhook deliveries, notifications) goes to stderr, secrets masked."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter(read_environment().redactor))
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("mlops.webhook").setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _logging()
    return guarded(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
