"""Real-world pushes: the corpus of tests/fixtures/repos/ trained by this checkout and by the code before
environments (a commit given with --before), and the speed of environments.

    python bench/bench_realworld.py [--runtime local|docker] [--before COMMIT] [--max-trials 2] [--no-speed]

For each checkout, every corpus repository is run with ``mlops run`` in a process of its own (one shared
workspace per checkout, as one mlops serves many pushes), and the bench prints the share of repositories
that produce a metric at trial 0, the share that reach the target (0.8), and the median wall time of a run.
The code before is taken with ``git archive`` into a temporary folder (nothing of this checkout changes).

Speed (local runtime): a second run that needs an environment already built (goal: adds under 1 s), and a
build of three packages the base lacks with uv's cache warm (goal: under 30 s), locally and as a derived
Docker image when an engine answers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops.config import FLAGS  # noqa: E402
from tests.support.corpus import as_git_repo, manifest  # noqa: E402

DEFAULT_BEFORE = "2107188"  # main before environments: failure classes and kept metrics, no installs
THREE = {"train.py": "import seaborn\nimport tabulate\nimport emoji\n"}


def cli(checkout: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(checkout), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def corpus_figures(checkout: Path, runtime: str, max_trials: int, scratch: Path) -> dict[str, object]:
    workspace = scratch / "ws"
    if runtime == "docker":
        cli(checkout, "images", "build")
    rows = {}
    for name, expected in sorted(manifest().items()):
        repo = as_git_repo(name, scratch / "repos")
        # The repository's own settings (a short --timeout for the script that waits for a file forever).
        flags = [
            part
            for key, value in expected.get("flags", {}).items()
            for part in (
                # a switch (network: false) is its flag, --no-network; a value follows its flag
                [("--" if value else "--no-") + key.replace("_", "-")]
                if isinstance(value, bool)
                else [FLAGS.get(key, "--" + key.replace("_", "-")), str(value)]
            )
        ]
        started = time.perf_counter()
        cli(
            checkout,
            "run",
            str(repo),
            "--runtime",
            runtime,
            "--max-trials",
            str(max_trials),
            "--workspace",
            str(workspace),
            *flags,
        )
        seconds = time.perf_counter() - started
        history = cli(checkout, "history", "--json", "--workspace", str(workspace)).stdout
        runs = [json.loads(line) for line in history.splitlines() if line.startswith("{")]
        mine = [r for r in runs if r.get("source") == str(repo)]
        last = mine[-1] if mine else {}
        rows[name] = {
            "metric": last.get("baseline_metric"),
            "reached": bool(last.get("reached")),
            "seconds": round(seconds, 1),
        }
        print(
            f"   {checkout.name:>12} {name:<30} trial 0 {last.get('baseline_metric')}  reached {last.get('reached')}  {seconds:.1f} s",
            flush=True,
        )
    n = len(rows)
    return {
        "metric_at_trial_0": sum(r["metric"] is not None for r in rows.values()) / n,
        "reached": sum(r["reached"] for r in rows.values()) / n,
        "median_s": statistics.median(r["seconds"] for r in rows.values()),
        "rows": rows,
    }


def speed(scratch: Path) -> None:
    from mlops import envs
    from mlops.envs.local import LocalBuilder
    from tests.support.envs import resolve_local, write_files

    code = write_files(scratch / "three", THREE)
    resolve_local(code, scratch / "warm")  # fills uv's cache: the builds below are the ones measured
    started = time.perf_counter()
    env = resolve_local(code, scratch / "store")
    build = time.perf_counter() - started
    print(
        f"local build of 3 packages the base lacks, uv cache warm: {build:.1f} s (goal < 30 s): {'; '.join(env.installed[:3])}"
    )
    times = []
    for _ in range(5):
        started = time.perf_counter()
        resolve_local(code, scratch / "store")
        times.append(time.perf_counter() - started)
    print(f"a second run needing it: +{statistics.median(times) * 1000:.0f} ms (median of 5; goal < 1 s)")
    size = sum(p.stat().st_size for p in Path(env.python).parent.parent.rglob("*") if p.is_file())
    print(
        f"the environment holds {size / 1e6:.1f} MB: TensorFlow, Keras, numpy are the base's, seen, not copied"
    )
    del LocalBuilder
    from mlops.runtime.docker import DockerRuntime, engine_available

    if not engine_available():
        print("docker: no engine answers; the derived image's build is not measured")
        return
    from mlops.envs.images import ImageBuilder
    from mlops.envs.resolve import Request

    runtime = DockerRuntime.from_env(scratch / "dws")
    runtime.build("mlops-sklearn", say=lambda _: None)
    store, uv = envs.Store(scratch / "dstore"), envs.Uv.from_env()
    builder = ImageBuilder(runtime, store, uv)
    started = time.perf_counter()
    env = envs.resolve(Request(code, "train.py", "mlops-sklearn", False), builder, store, uv)
    print(
        f"docker: derived image of 3 packages, uv cache warm: {time.perf_counter() - started:.1f} s -> {env.image}"
    )
    runtime.client.images.remove(env.image, force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="local", choices=["local", "docker"])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="the commit to compare with")
    parser.add_argument("--max-trials", type=int, default=2)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-corpus", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-realworld-"))
    try:
        if not args.no_speed:
            speed(scratch / "speed")
        if args.no_corpus:
            return 0
        before = scratch / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        figures = {}
        for label, checkout in (("before", before), ("now", ROOT)):
            figures[label] = corpus_figures(checkout, args.runtime, args.max_trials, scratch / label)
        n = len(manifest())
        print(f"\n{n} repositories, runtime {args.runtime}, up to {args.max_trials} trials, target 0.8")
        print(f"{'':8} {'metric at trial 0':>18} {'reach the target':>17} {'median wall time':>17}")
        for label, f in figures.items():
            print(f"{label:8} {f['metric_at_trial_0']:>18.0%} {f['reached']:>17.0%} {f['median_s']:>15.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
