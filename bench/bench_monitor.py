"""Job 6 figures: death-to-training time, work lost per kill, checkpoint overhead.

    python bench/bench_monitor.py [--runtime local|docker] [--kills 3] [--epochs 8]

Prints, for the chosen runtime: the time from a training's death (SIGKILL mid-epoch) to its training
running again (goal: under 2 s plus the image's start and TensorFlow's import time, printed beside it),
the epochs of work lost per kill (goal: at most 1 with per-epoch checkpoints), and what the checkpoints
cost as a share of an epoch's time (goal: under 5%).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlops.ledger import Ledger  # noqa: E402
from mlops.progress import Progress  # noqa: E402
from mlops.runtime.base import Limits, TrialSpec  # noqa: E402
from mlops.runtime.local import LocalRuntime  # noqa: E402
from monitor.supervisor import RestartPolicy, Supervisor  # noqa: E402

SCRIPT = """
import time
import keras
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X = X / 16.0
model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(256, activation="relu"),
                          keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=EPOCHS, batch_size=16, validation_split=0.2)
"""


def make_runtime(name: str, workspace: Path):
    if name == "docker":
        from mlops.runtime.docker import DockerRuntime

        return DockerRuntime.from_env(workspace=workspace)
    return LocalRuntime(workspace)


def setup(root: Path, epochs: int, name: str, env: dict[str, str]):
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(SCRIPT.replace("EPOCHS", str(epochs)))
    ledger = Ledger(root / "ws" / "ledger.db")
    run = ledger.create_run(
        name=name,
        source=str(code),
        ref=None,
        commit="d" * 40,
        author="bench",
        code_dir=code,
        script="train.py",
        classification={"kind": "ann", "image": "mlops-keras3"},
        runtime="local",
        metric="accuracy",
        target=0.8,
        strategy="tpe",
        max_trials=1,
        settings={},
        runs_dir=root / "ws" / "runs",
    )
    folder = run.dir / "trials" / "0"
    folder.mkdir(parents=True)
    (folder / "source.py").write_text((code / "train.py").read_text())
    trial = ledger.add_trial(run.id, 0, [], [], seed=0)
    spec = TrialSpec(
        run.id,
        0,
        code,
        "train.py",
        folder / "source.py",
        folder,
        image="mlops-keras3",
        limits=Limits(timeout_s=900, memory_mb=4096),
        env=env,
    )
    return ledger, run, trial, spec


def timed_run(root: Path, runtime_name: str, epochs: int, checkpoints: bool) -> float:
    """Median seconds per epoch (from the log's timestamps) with or without checkpoints."""
    env = {"MLOPS_SEED": "0", "MLOPS_CHECKPOINTS": "1" if checkpoints else "0"}
    ledger, run, trial, spec = setup(root, epochs, f"ckpt{int(checkpoints)}", env)
    stamps: list[float] = []
    runtime = make_runtime(runtime_name, root / "ws")

    class Clock(Progress):
        def trial_line(self, run_id: str, number: int, line: str) -> None:
            if line.startswith("[mlops] epoch "):
                stamps.append(time.monotonic())

    Supervisor(runtime, ledger, Clock(open(os.devnull, "w")), RestartPolicy()).execute(run, trial, spec)  # noqa: SIM115
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return statistics.median(gaps)


def chaos(root: Path, runtime_name: str, epochs: int, kills: int) -> tuple[list[float], list[float], float]:
    ledger, run, trial, spec = setup(root, epochs, "chaos", {"MLOPS_SEED": "0"})
    runtime = make_runtime(runtime_name, root / "ws")
    events: list[tuple[str, float]] = []

    class Watch(Progress):
        def trial_line(self, run_id: str, number: int, line: str) -> None:
            if line.startswith("[mlops] running"):
                events.append(("started", time.monotonic()))
            elif line.startswith("[mlops] resumed"):
                events.append(("resumed", time.monotonic()))
            elif line.startswith("[mlops] epoch "):
                events.append(("epoch", time.monotonic()))

    deaths: list[float] = []

    def killer():
        for _ in range(kills):
            seen = sum(1 for e in events if e[0] == "epoch")
            while sum(1 for e in events if e[0] == "epoch") < seen + 2:
                time.sleep(0.02)
            time.sleep(0.4)  # the middle of the next epoch
            current = ledger.trial(run.id, 0)
            if current.status.is_finished() or not current.handle:
                return
            killed_at = time.monotonic()
            try:
                if runtime_name == "docker":
                    runtime.kill_container(current.handle)
                else:
                    os.killpg(current.handle["pid"], signal.SIGKILL)
            except ProcessLookupError:
                return
            deaths.append(killed_at)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    policy = RestartPolicy(max_restarts=kills + 2, base_delay_s=0.0)
    Supervisor(runtime, ledger, Watch(open(os.devnull, "w")), policy).execute(run, trial, spec)  # noqa: SIM115
    thread.join()
    log = (spec.trial_dir / "log.txt").read_text()
    back, warm = [], []
    for death in deaths:  # death -> the harness running again -> training resumed from the checkpoint
        started = [t for kind, t in events if kind == "started" and t > death]
        resumed = [t for kind, t in events if kind == "resumed" and t > death]
        if started and resumed:
            back.append(min(started) - death)
            warm.append(min(resumed) - min(started))
    # Work lost per kill: the part of the epoch under way when it died, plus any finished epoch trained again.
    epoch_stamps = sorted(t for kind, t in events if kind == "epoch")
    gaps = [b - a for a, b in zip(epoch_stamps, epoch_stamps[1:], strict=False) if b - a < 5]
    per_epoch = statistics.median(gaps)
    partial = [(d - max(t for t in epoch_stamps if t < d)) / per_epoch for d in deaths]
    repeated = log.count("[mlops] epoch ") - epochs
    lost = (sum(partial) + repeated) / max(1, len(deaths))
    return back, warm, lost


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtime", default="local", choices=["local", "docker"])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.monotonic()
        back, warm, lost = chaos(root / "chaos", args.runtime, args.epochs, args.kills)
        with_ckpt = timed_run(root / "on", args.runtime, args.epochs, True)
        without = timed_run(root / "off", args.runtime, args.epochs, False)
    overhead = (with_ckpt - without) / without * 100
    print(f"runtime: {args.runtime}; {args.kills} kills (SIGKILL mid-epoch) over {args.epochs} epochs")
    print(
        f"{'death -> harness running again':45s} median {statistics.median(back):5.2f} s "
        f"(max {max(back):.2f} s; goal < 2 s; process or container start included)"
    )
    print(
        f"{'harness running -> training resumed':45s} median {statistics.median(warm):5.2f} s "
        "(importing TensorFlow, building the model, restoring the checkpoint)"
    )
    print(f"{'epochs of work lost per kill':45s} {lost:5.2f} (goal <= 1)")
    print(f"{'seconds per epoch with checkpoints':45s} {with_ckpt:5.3f}")
    print(f"{'seconds per epoch without checkpoints':45s} {without:5.3f}")
    print(f"{'checkpoint overhead, share of an epoch':45s} {overhead:5.1f} % (goal < 5%)")
    print(f"(bench wall time {time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
