"""Container figures, side by side in one run: a trial in a container against the same harness run
directly, cold and warm image builds, what a code change and a harness change rebuild, each image's size.

    python bench/bench_docker.py [--repeat 3] [--no-cold] [--image mlops-sklearn]

The cold build builds the image again with no layer cache, from the base image (about a minute for
mlops-sklearn: pip downloads its packages), under a throwaway tag that is removed afterwards. Goals: the
container adds less than 1.5 s per trial over running the harness directly; a change to a model's code
rebuilds nothing; a change to the harness rebuilds only the image's last layer.
"""

from __future__ import annotations

import argparse
import shutil
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
BENCH_TAG = "mlops-bench"


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


def steps_run(log: list[str]) -> list[str]:
    """The build steps that ran (were not taken from the layer cache), as 'N/M INSTRUCTION'."""
    ran, step = [], None
    for line in log:
        if line.startswith("Step "):
            if step is not None:
                ran.append(step)
            number, _, instruction = line.removeprefix("Step ").partition(" : ")
            keyword = instruction.split(maxsplit=1)[0]
            step = None if keyword.upper() == "FROM" else f"{number} {keyword}"  # FROM is never cached
        elif "Using cache" in line:
            step = None
    return ran if step is None else [*ran, step]


def timed_build(docker: DockerRuntime, context: Path, dockerfile: str, tag: str, nocache=False):
    started = time.perf_counter()
    log = docker.build_context(context, dockerfile, tag, say=lambda _: None, nocache=nocache)
    return time.perf_counter() - started, steps_run(log)


def copy_context(target: Path) -> Path:
    """A build context like the repository's: the Dockerfiles, the harness package, the models, .dockerignore."""
    for rel in ("dockerfiles", "models"):
        shutil.copytree(images.ROOT / rel, target / rel)
    (target / images.HARNESS.name).mkdir()
    for path in images.harness_files():
        shutil.copy2(path, target / images.HARNESS.name / path.name)
    shutil.copy2(images.ROOT / ".dockerignore", target / ".dockerignore")
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build")
    parser.add_argument("--image", default="mlops-sklearn", help="the image the build figures are for")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    dockerfile = images.dockerfile(args.image).relative_to(images.ROOT).as_posix()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docker = DockerRuntime.from_env(root / "ws")
        made: list[str] = []
        try:
            missing = [str(name) for name in images.buildable() if not docker.image_present(images.tag(name))]
            started = time.perf_counter()
            docker.build_all()
            seconds = time.perf_counter() - started
            rows.append(
                ("build of every image (tags checked)", f"{seconds:6.2f} s, built: {missing or 'none'}")
            )
            if not args.no_cold:
                made.append(f"{BENCH_TAG}:cold")
                seconds, ran = timed_build(docker, images.ROOT, dockerfile, made[-1], nocache=True)
                rows.append(
                    (f"cold build of {args.image} (no cache)", f"{seconds:6.1f} s, {len(ran)} steps run")
                )
            context = copy_context(root / "context")
            made.append(f"{BENCH_TAG}:warm")
            timed_build(docker, context, dockerfile, made[-1])  # same inputs as the real image: all cached
            model = context / "models" / "kmeans.py"
            model.write_text(model.read_text() + "\n# a code-only change\n")
            seconds, ran = timed_build(docker, context, dockerfile, made[-1])
            rows.append(
                (
                    f"warm build of {args.image}, model changed",
                    f"{seconds:6.2f} s, steps run: {ran or 'none'}",
                )
            )
            harness = context / images.HARNESS.name / "runner.py"
            harness.write_text(harness.read_text() + f"\n# a harness change {time.time()}\n")
            made.append(f"{BENCH_TAG}:harness")
            seconds, ran = timed_build(docker, context, dockerfile, made[-1])
            rows.append((f"build of {args.image}, harness changed", f"{seconds:6.2f} s, steps run: {ran}"))
        finally:
            for tag in made:
                if docker.image_present(tag):
                    docker.client.images.remove(tag, force=True)
        in_container = [trial_seconds(docker, root, i) for i in range(args.repeat)]
        direct = [trial_seconds(LocalRuntime(root / "ws"), root, i) for i in range(args.repeat)]
    c, d = statistics.median(in_container), statistics.median(direct)
    rows[:0] = [
        ("trial in a container (median)", f"{c:6.2f} s"),
        ("same harness run directly (median)", f"{d:6.2f} s"),
        ("container overhead per trial", f"{c - d:6.2f} s (goal < 1.5 s)"),
    ]
    for name in map(str, images.buildable()):
        size = docker.image_size(images.tag(name))
        rows.append((f"size of {name}", f"{size / 1e6:6.0f} MB" if size else "not built"))
    for label, value in rows:
        print(f"{label:44s} {value}")


if __name__ == "__main__":
    main()
