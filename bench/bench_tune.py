"""Tuning figures: ladder (the hand-made pipelines' order) against the default (tpe), side by side.

    python bench/bench_tune.py [--max-trials 6] [--only NAME]

Each deliberately weak model in bench/weak_models/ is pushed to its own git repository and tuned by
`mlops run` with each strategy, aiming at 0.95 so one run shows both thresholds. For 0.80 and 0.95 it
prints the trials (trial 0 included) and the training wall time until the first trial at or above it
("-" when never reached within the budget). Goal: the default reaches 0.80 in at most 2 trials (median)
and never needs more wall time than ladder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "bench" / "weak_models"
STRATEGIES = ("ladder", "tpe")
THRESHOLDS = (0.80, 0.95)


def mlops(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def make_repo(folder: Path, script: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / script.name).write_text(script.read_text())
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=b@example.com", "commit", "-q", "-m", "weak"],
    ):
        subprocess.run(["git", *args], cwd=folder, check=True)
    return folder


def tune(script: Path, strategy: str, max_trials: int, tmp: Path) -> list[dict]:
    repo = make_repo(tmp / f"{script.stem}-{strategy}", script)
    ws = tmp / f"ws-{script.stem}-{strategy}"
    done = mlops(
        "run",
        str(repo),
        "--runtime",
        "local",
        "--strategy",
        strategy,
        "--target",
        "0.95",
        "--max-trials",
        str(max_trials),
        "--workspace",
        str(ws),
        cwd=tmp,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"{script.name} ({strategy}) failed:\n{done.stdout[-2000:]}\n{done.stderr}")
    run = json.loads(mlops("history", "--json", "--workspace", str(ws), cwd=tmp).stdout.splitlines()[0])
    return json.loads(mlops("show", run["run"], "--json", "--workspace", str(ws), cwd=tmp).stdout)[
        "trial_list"
    ]


def reach(trials: list[dict], threshold: float) -> tuple[int, float] | None:
    wall = 0.0
    for t in trials:
        wall += t["duration_s"] or 0.0
        if t["metric"] is not None and t["metric"] >= threshold:
            return t["number"] + 1, wall
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-trials", type=int, default=6)
    parser.add_argument("--only", help="one model's name")
    args = parser.parse_args()
    scripts = sorted(p for p in MODELS.glob("*.py") if not args.only or p.stem == args.only)
    rows, firsts = [], {s: [] for s in STRATEGIES}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            results = {s: tune(script, s, args.max_trials, Path(tmp)) for s in STRATEGIES}
            baseline = results["tpe"][0]["metric"]
            cells = []
            for threshold in THRESHOLDS:
                for strategy in STRATEGIES:
                    got = reach(results[strategy], threshold)
                    cells.append(f"{got[0]} / {got[1]:5.1f}s" if got else "-")
                    if threshold == 0.80:
                        firsts[strategy].append(got)
            best = {s: max((t["metric"] or 0) for t in results[s]) for s in STRATEGIES}
            rows.append(
                [
                    script.stem,
                    f"{baseline:.3f}" if baseline is not None else "-",
                    *cells,
                    f"{best['ladder']:.3f}",
                    f"{best['tpe']:.3f}",
                ]
            )
    header = [
        "model",
        "trial 0",
        "0.80 ladder",
        "0.80 tpe",
        "0.95 ladder",
        "0.95 tpe",
        "best ladder",
        "best tpe",
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(
        "trials (trial 0 included) / training wall time to first reach the threshold; - = not within budget"
    )
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    for strategy in STRATEGIES:
        reached = [g[0] for g in firsts[strategy] if g]
        median = statistics.median(reached) if reached else float("nan")
        print(f"{strategy}: reached 0.80 on {len(reached)}/{len(scripts)} models, median trials {median}")
    slower = [
        r[0]
        for r, fl, ft in zip(rows, firsts["ladder"], firsts["tpe"], strict=True)
        if fl and ft and ft[1] > fl[1]
    ]
    print(f"models where tpe needed more wall time than ladder to reach 0.80: {slower or 'none'}")
    print(f"(bench wall time {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
