"""Warm start across commits: cold against warm, trials and seconds to the target.

    python bench/bench_warm_start.py [--only NAME] [--target 0.95] [--max-trials 6]

For each weak Keras model of bench/weak_models/, a real git repository gets four commits in a row: the
model as it is, then a comment, a change of batch size, a new hidden layer. Each commit is run with
`mlops run --runtime local` twice: cold (`--no-warm-start`, in a workspace of its own) and warm (the
default, in a workspace where the commit before was run). The first commit has no earlier run, so it is
cold in both. For each commit after the first: the trials until the target (trial 0 included) and the
seconds from the command's start to the end of the first trial at the target; "-" when never reached.
Goal: warm runs reach the target in 2 trials on every commit after the first, at least twice as fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEAK = ROOT / "bench" / "weak_models"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
# The new hidden layer of the last commit, per model: (a line of the model, the same with a layer after it).
NEW_LAYER = {
    "cnn_4_filters": (
        "model.add(Flatten())\n",
        'model.add(Flatten())\nmodel.add(Dense(16, activation="relu"))\n',
    ),
    "dense_3_units": (
        '    keras.layers.Dense(3, activation="relu"),\n',
        '    keras.layers.Dense(3, activation="relu"),\n    keras.layers.Dense(8, activation="relu"),\n',
    ),
    "functional_api": (
        'x = layers.Dense(2, activation="relu")(inputs)\n',
        'x = layers.Dense(2, activation="relu")(inputs)\nx = layers.Dense(4, activation="relu")(x)\n',
    ),
}


@dataclass
class Outcome:
    trials: int | None  # until the target, trial 0 included
    seconds: float | None  # from the command's start to the end of that trial
    ran: int  # trials trained in all
    warm_from: str | None


def commits(name: str) -> list[tuple[str, str]]:
    """(message, source) of the four commits: as it is, a comment, a batch size, a new layer."""
    source = (WEAK / f"{name}.py").read_text()
    comment = "# reviewed: the data loading is fine\n" + source
    batch = re.sub(r"batch_size=(\d+)", lambda m: f"batch_size={max(8, int(m.group(1)) // 2)}", comment)
    old, new = NEW_LAYER[name]
    assert old in batch, f"{name}: no line {old!r} to add a layer after"
    return [
        ("as it is", source),
        ("a comment", comment),
        ("batch size", batch),
        ("new layer", batch.replace(old, new)),
    ]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=dict(os.environ, **GIT_ENV), check=True, capture_output=True)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def run(repo: Path, ws: Path, args: argparse.Namespace, warm: bool) -> Outcome:
    started = time.time()
    done = cli(
        *("run", str(repo / "model.py"), "--runtime", "local", "--target", str(args.target)),
        *("--max-trials", str(args.max_trials), "--workspace", str(ws)),
        *(() if warm else ("--no-warm-start",)),
        cwd=repo.parent,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"mlops run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    last = json.loads(
        cli("history", "--json", "--workspace", str(ws), cwd=repo.parent).stdout.splitlines()[-1]
    )
    with sqlite3.connect(f"file:{ws / 'ledger.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT number, metric, finished_at FROM trials WHERE run_id = ? ORDER BY number", (last["run"],)
        ).fetchall()
    reached = [(n, f) for n, m, f in rows if m is not None and m >= args.target and f is not None]
    if not reached:
        return Outcome(None, None, len(rows), last.get("warm_from"))
    number, finished = reached[0]
    return Outcome(number + 1, finished - started, len(rows), last.get("warm_from"))


def bench(name: str, args: argparse.Namespace, tmp: Path) -> list[tuple[str, Outcome, Outcome]]:
    """Each commit cold and warm (the first one once: it has nothing to start from)."""
    rows = []
    repo = tmp / name / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for i, (message, source) in enumerate(commits(name)):
        (repo / "model.py").write_text(source)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", message)
        warm = run(repo, tmp / name / "ws-warm", args, warm=True)  # the first: nothing to start from
        cold = run(repo, tmp / name / "ws-cold", args, warm=False) if i else warm
        print(f"   {name} {message}: cold {show(cold)}, warm {show(warm)}", flush=True)
        rows.append((message, cold, warm))
    return rows


def show(o: Outcome) -> str:
    if o.trials is None:
        return f"- ({o.ran} trials, not reached)"
    return f"{o.trials} trials, {o.seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one model of bench/weak_models/ (by name)")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--max-trials", type=int, default=6)
    args = parser.parse_args()
    names = [args.only] if args.only else sorted(NEW_LAYER)
    print(f"warm start: cold against warm, target {args.target}, at most {args.max_trials} trials")
    print(
        f"{'model':16} {'commit':11} {'cold trials':>11} {'cold s':>7} {'warm trials':>11} {'warm s':>7} {'speed-up':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        table = {name: bench(name, args, Path(tmp)) for name in names}
    met = True
    for name, rows in table.items():
        for message, cold, warm in rows[1:]:
            ratio = cold.seconds / warm.seconds if cold.seconds and warm.seconds else None
            met &= warm.trials == 2 and ratio is not None and ratio >= 2
            cells = [
                str(cold.trials or "-"),
                f"{cold.seconds:.1f}" if cold.seconds else "-",
                str(warm.trials or "-"),
                f"{warm.seconds:.1f}" if warm.seconds else "-",
                f"{ratio:.2f}x" if ratio else "-",
            ]
            print(
                f"{name:16} {message:11} {cells[0]:>11} {cells[1]:>7} {cells[2]:>11} {cells[3]:>7} {cells[4]:>8}"
            )
    print(
        f"goal (warm: 2 trials, at least 2x as fast, every commit after the first): {'met' if met else 'not met'}"
    )


if __name__ == "__main__":
    main()
