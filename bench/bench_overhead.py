"""Where a trial's time goes, against ``python script.py`` run directly: locally (the bubblewrap sandbox)
and in Docker, on one small Keras script.

    python bench/bench_overhead.py [--repeat 3] [--no-docker]

Direct, the script runs under a few lines that note when Keras's ``fit`` is first called and when the
script returns (nothing else changes); through mlops, the harness's events say the same (``started``: the
script begins; ``inputs``: the first fit begins; ``finished``: the metric and the model are written). Each
phase is the median over the repeats:

- start: from the launch to the script's first line (interpreter, sandbox or container, the harness);
- to fit: from the script's first line to its first fit (TensorFlow's import, the data, the model: the
  script's own time, hooks included);
- training: from the first fit to the end of the script (with the harness: the metric and the model saved);
- exit: from the end to the process gone (the interpreter's teardown; the harness skips it).

"local, ahead" is a trial started ahead (``LocalRuntime.prestart``, as the tuner does for the next trial
while one trains), given its source once its libraries loaded: the launch is the go.

"last trial -> command ended" is a whole ``mlops run`` of the same script (two trials, a target out of
reach) from a git repository: from the last trial's end, as the ledger recorded it, to the command's
process gone (the model's load check, the report, the page of all runs). ``--after-only`` measures just
that; ``--no-docker`` leaves out its Docker row too.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops.runtime.base import Limits, Runtime, TrialSpec  # noqa: E402
from mlops.runtime.local import LocalRuntime  # noqa: E402
from mlops_harness.protocol import EVENTS_FILE, EventKind, read_events  # noqa: E402

SCRIPT = """
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=1)
model = keras.Sequential([
    keras.Input(shape=(64,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=5, batch_size=32, verbose=0)
print(model.evaluate(X_test, y_test, verbose=0))
"""

# Direct: the script as `python train.py` would run it, with the times noted around it.
DIRECT = """
import json, runpy, sys, time
marks = {"script": time.time()}
import keras
fit = keras.Model.fit
def noted(self, *args, **kwargs):
    marks.setdefault("fit", time.time())
    return fit(self, *args, **kwargs)
keras.Model.fit = noted
marks["keras"] = time.time()
runpy.run_path(sys.argv[1], run_name="__main__")
marks["end"] = time.time()
print("MARKS " + json.dumps(marks), flush=True)
"""

PHASES = ("start", "to fit", "training", "exit", "total")


def direct(code: Path) -> dict[str, float]:
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-c", DIRECT, str(code / "train.py")],
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": str(code)},
    )
    gone = time.time()
    marks = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("MARKS "))[6:])
    return {
        "start": marks["script"] - launched,
        "to fit": marks["fit"] - marks["script"],
        "training": marks["end"] - marks["fit"],
        "exit": gone - marks["end"],
        "total": gone - launched,
    }


def through(
    runtime: Runtime[Any], code: Path, folder: Path, image: str = "", ahead: bool = False
) -> dict[str, float]:
    """One trial through ``runtime``; ``ahead``: started ahead (local), given its trial once its libraries
    loaded, as when the trial before it trains for longer than that."""
    spec = TrialSpec(
        folder.parent.parent.name,
        int(folder.name),
        code,
        "train.py",
        folder / "source.py",
        folder,
        image=image,
        limits=Limits(timeout_s=600, memory_mb=4096),
    )
    if ahead:
        assert isinstance(runtime, LocalRuntime)
        runtime.prestart(spec)
        log = folder / "log.txt"
        while not (log.exists() and "started ahead" in log.read_text()):
            time.sleep(0.05)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "source.py").write_text(SCRIPT)
    launched = time.time()
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    gone = time.time()
    runtime.remove(handle)
    if not outcome.ok:
        raise SystemExit(f"the trial failed: {outcome}\n{(folder / 'log.txt').read_text()[-2000:]}")
    at: dict[EventKind, float] = {}
    for event in read_events(folder / EVENTS_FILE):
        at.setdefault(event.kind, event.at)
    return {
        "start": at[EventKind.STARTED] - launched,
        "to fit": at[EventKind.INPUTS] - at[EventKind.STARTED],
        "training": at[EventKind.FINISHED] - at[EventKind.INPUTS],
        "exit": gone - at[EventKind.FINISHED],
        "total": gone - launched,
    }


def median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {phase: statistics.median(row[phase] for row in rows) for phase in PHASES}


def git_repo(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(SCRIPT)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=b@example.com", "commit", "-q", "-m", "bench"],
    ):
        subprocess.run(["git", *args], cwd=folder, check=True)
    return folder


def after_last(root: Path, repo: Path, runtime: str, number: int) -> tuple[float, float]:
    """One ``mlops run`` of two trials: seconds from the last trial's end to the command gone, and the
    command's whole time."""
    ws = root / f"ws-after-{runtime}-{number}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "jobs.cli", "run", str(repo), "--runtime", runtime]
    command += ["--target", "0.999", "--max-trials", "2", "--workspace", str(ws)]
    began = time.time()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode not in (0, 1):
        raise SystemExit(f"mlops run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    with sqlite3.connect(f"file:{ws / 'ledger.db'}?mode=ro", uri=True) as db:
        (last,) = db.execute("SELECT max(finished_at) FROM trials").fetchone()
    return ended - float(last), ended - began


def after_rows(root: Path, runtimes: list[str], repeat: int) -> None:
    repo = git_repo(root / "repo")
    print(f"last trial -> command ended (mlops run, 2 trials; median of {repeat}, seconds; whole command)")
    for runtime in runtimes:
        rows = [after_last(root, repo, runtime, i) for i in range(repeat)]
        gaps, walls = [gap for gap, _ in rows], [wall for _, wall in rows]
        shown = ", ".join(f"{g:.2f}" for g in gaps)
        print(
            f"  {runtime:8} {statistics.median(gaps):6.2f}   ({shown}; command {statistics.median(walls):.1f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true", help="only direct and local")
    parser.add_argument("--after-only", action="store_true", help="only last trial -> command ended")
    args = parser.parse_args()
    runtimes = ["local"] + ([] if args.no_docker else ["docker"])
    if args.after_only:
        with tempfile.TemporaryDirectory() as tmp:
            after_rows(Path(tmp), runtimes, args.repeat)
        return
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        code = root / "code"
        code.mkdir()
        (code / "train.py").write_text(SCRIPT)
        direct(code)  # the first run warms the disk cache for every contender
        results["python train.py"] = median([direct(code) for _ in range(args.repeat)])
        local = LocalRuntime(root / "ws")
        runs = root / "ws" / "runs"
        results["mlops local"] = median(
            [through(local, code, runs / "local" / "trials" / str(i)) for i in range(args.repeat)]
        )
        results["local, ahead"] = median(
            [through(local, code, runs / "ahead" / "trials" / str(i), ahead=True) for i in range(args.repeat)]
        )
        if not args.no_docker:
            from mlops import images
            from mlops.runtime.docker import DockerRuntime

            docker = DockerRuntime.from_env(root / "ws")
            image = "mlops-keras3"
            if not docker.image_present(images.tag(image)):
                docker.build_all(say=print)  # this checkout's images (seconds when only the harness changed)
            results["mlops docker"] = median(
                [
                    through(docker, code, runs / "docker" / "trials" / str(i), image)
                    for i in range(args.repeat)
                ]
            )
    base = results["python train.py"]
    print(f"median of {args.repeat}; seconds; (+x): more than python train.py")
    print(f"{'':18}" + "".join(f"{p:>16}" for p in PHASES))
    for name, row in results.items():
        cells = []
        for phase in PHASES:
            extra = "" if name == "python train.py" else f" ({row[phase] - base[phase]:+.2f})"
            cells.append(f"{row[phase]:.2f}{extra}")
        print(f"{name:18}" + "".join(f"{c:>16}" for c in cells))
    with tempfile.TemporaryDirectory() as tmp:
        after_rows(Path(tmp), runtimes, args.repeat)


if __name__ == "__main__":
    main()
