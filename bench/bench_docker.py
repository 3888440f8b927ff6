"""Container figures, side by side in one run: a trial in a container against the same harness run
directly, cold and warm image builds, and each image's size.

    python bench/bench_docker.py [--repeat 3] [--cold]

--cold removes the sklearn image first so its build is measured from the base image (about a minute);
without it the "cold" line is skipped. Goal: the container adds less than 1.5 s per trial over running the
harness directly, and a code-only change rebuilds nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlops import images  # noqa: E402
from mlops.runtime.base import Limits, TrialSpec  # noqa: E402
from mlops.runtime.docker import DockerRuntime  # noqa: E402
from mlops.runtime.local import LocalRuntime  # noqa: E402

SCRIPT = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
print(LogisticRegression(max_iter=500).fit(X, y).score(X, y))
"""


def trial_seconds(runtime, root: Path, n: int) -> float:
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(SCRIPT)
    folder = root / "ws" / "runs" / f"{runtime.name}-{n}" / "trials" / "0"
    folder.mkdir(parents=True)
    (folder / "source.py").write_text(SCRIPT)
    spec = TrialSpec(
        f"{runtime.name}-{n}",
        0,
        code,
        "train.py",
        folder / "source.py",
        folder,
        image="mlops-sklearn",
        limits=Limits(timeout_s=300, memory_mb=2048),
    )
    started = time.perf_counter()
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    elapsed = time.perf_counter() - started
    runtime.remove(handle)
    assert outcome.ok, outcome
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="measure a cold build of mlops-sklearn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docker = DockerRuntime.from_env(root / "ws")
        local = LocalRuntime(root / "ws")
        say = lambda line: None  # noqa: E731
        cold = None
        if args.cold:
            for tag in (images.tag("mlops-sklearn"), "mlops-sklearn:latest"):
                if docker.image_present(tag):
                    docker.client.images.remove(tag, force=True)
            started = time.perf_counter()
            docker.build("mlops-sklearn", say=say)
            cold = time.perf_counter() - started
        started = time.perf_counter()
        rebuilt = [name for name in map(str, images.buildable()) if docker.build(name, say=say)[1]]
        warm = time.perf_counter() - started
        in_container = [trial_seconds(docker, root, i) for i in range(args.repeat)]
        direct = [trial_seconds(local, root, i) for i in range(args.repeat)]
    c, d = statistics.median(in_container), statistics.median(direct)
    print(f"{'trial in a container (median)':42s} {c:6.2f} s")
    print(f"{'same harness run directly (median)':42s} {d:6.2f} s")
    print(f"{'container overhead per trial':42s} {c - d:6.2f} s (goal < 1.5 s)")
    if cold is not None:
        print(f"{'cold build of mlops-sklearn':42s} {cold:6.1f} s")
    print(f"{'warm build of every image (code change)':42s} {warm:6.2f} s, rebuilt: {rebuilt or 'nothing'}")
    for name in map(str, images.buildable()):
        tag = images.tag(name)
        size = (
            docker.client.images.get(tag).attrs["Size"] / 1e6 if docker.image_present(tag) else float("nan")
        )
        print(f"{'size of ' + tag:42s} {size:6.0f} MB")


if __name__ == "__main__":
    main()
