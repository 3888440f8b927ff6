"""What the local runtime's sandbox costs per trial, against the local runtime without it.

    python bench/bench_sandbox.py [--repeat 15]

Three ways to launch the same trial (the harness on a script that writes its accuracy and imports
nothing, so the launch is all there is), interleaved so that the machine's load hits each alike:

- direct: the harness as a child process, its output to the log file (how the local runtime ran trials
  before the sandbox);
- unsandboxed: through the keeper (secrets masked, the log capped), as ``--runtime local --unsandboxed``;
- sandboxed: through the keeper and bubblewrap, without a disk quota;
- with quota: the same with the trial's disk quota (the default local runtime): its folder made a file
  system of its own (a sparse image, mkfs.ext4, a loop mount and a bind, see mlops/runtime/diskquota.py)
  before the launch, and copied back and unmounted after it (the ``release`` row: ``remove()``, after
  the trial has ended, not part of the start).

Each figure is the median wall time from the launch to the end of the process (the runtime's own 0.25 s
polling is left out). Goal: the sandbox adds under 100 ms per trial to the local runtime as it was; the
quota's cost is said beside it (no goal: it buys a limit nothing can outrun).

Then what building environments in the build sandbox costs (mlops/envs/boxes.py: uv in bubblewrap, the
index through the proxy): a build of three wheels over this interpreter (a cold uv cache: downloads
included), and a run that finds its environment built (what every later trial and run pays). Goals: the
build under 10 s, the cached environment under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlops.runtime.base import Limits, TrialSpec  # noqa: E402
from mlops.runtime.local import HARNESS, LocalRuntime  # noqa: E402
from mlops.runtime.sandbox import bwrap_argv  # noqa: E402

SCRIPT = 'open("accuracy.txt", "w").write("0.9")\n'


def spec_for(root: Path, name: str, quota: bool = False) -> TrialSpec:
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(SCRIPT)
    folder = root / "ws" / "runs" / name / "trials" / "0"
    folder.mkdir(parents=True)
    (folder / "source.py").write_text(SCRIPT)
    limits = Limits(timeout_s=300, memory_mb=2048)
    if not quota:
        limits = Limits(timeout_s=300, memory_mb=2048, disk_mb=None, disk_files=None)
    return TrialSpec(name, 0, code, "train.py", folder / "source.py", folder, limits=limits)


def direct(spec: TrialSpec) -> float:
    args = spec.harness_args(code=str(spec.code_dir), source=str(spec.source_file), out=str(spec.trial_dir))
    started = time.perf_counter()
    with (spec.trial_dir / "log.txt").open("ab") as log:
        code = subprocess.call(  # noqa: S603
            [sys.executable, str(HARNESS), *args], stdout=log, stderr=subprocess.STDOUT, cwd=spec.trial_dir
        )
    assert code == 0
    return time.perf_counter() - started


def through(runtime: LocalRuntime, spec: TrialSpec, released: list[float] | None = None) -> float:
    started = time.perf_counter()
    handle = runtime.run(spec)
    assert handle.process is not None
    code = handle.process.wait()
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    runtime.remove(handle)
    if released is not None:
        released.append(time.perf_counter() - started)
    assert code == 0, (spec.trial_dir / "log.txt").read_text()
    return elapsed


WHEELS = "import tabulate\nimport emoji\nimport toml\n"  # three pure-Python wheels, no dependencies


def environments(root: Path, repeat: int) -> bool:
    from mlops import envs
    from mlops.envs.local import LocalBuilder

    code = root / "envcode"
    code.mkdir()
    (code / "train.py").write_text(WHEELS)
    store, uv = envs.Store(root / "envs"), envs.Uv.from_env()
    builder = LocalBuilder(sys.executable, store, uv)
    request = envs.Request(code, "train.py", "mlops-sklearn", False)
    started = time.perf_counter()
    env = envs.resolve(request, builder, store, uv)
    build_s = time.perf_counter() - started
    cached = []
    for _ in range(repeat):
        started = time.perf_counter()
        again = envs.resolve(request, LocalBuilder(sys.executable, store, uv), store, uv)
        cached.append(time.perf_counter() - started)
        assert again.key == env.key and again.built_s is None
    cached_ms = statistics.median(cached) * 1000
    print(f"environments, built in the build sandbox: {'; '.join(env.installed)}")
    print(
        f"  a build of three wheels (cold uv cache, downloads included): {build_s:.2f} s; goal under 10 s: "
        f"{'met' if build_s < 10 else 'NOT met'}"
    )
    print(
        f"  a run whose environment is built already: {cached_ms:.1f} ms (median of {repeat}); goal under "
        f"50 ms: {'met' if cached_ms < 50 else 'NOT met'}"
    )
    return build_s < 10 and cached_ms < 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--environments-only", action="store_true", help="only the build figures")
    args = parser.parse_args()
    if args.environments_only:
        with tempfile.TemporaryDirectory(prefix="mlops-bench-envs-") as tmp:
            return 0 if environments(Path(tmp), args.repeat) else 1
    with tempfile.TemporaryDirectory(prefix="mlops-bench-sandbox-") as tmp:
        root = Path(tmp)
        sandboxed = LocalRuntime(root / "ws")
        unsandboxed = LocalRuntime(root / "ws", sandboxed=False)
        spec = spec_for(root, "probe")
        assert sandboxed.bwrap is not None
        started = time.perf_counter()
        (spec.trial_dir / "log.txt").touch()
        box = sandboxed.sandbox_for(spec, sandboxed.cache_dir(spec))
        subprocess.run(bwrap_argv(box, ["true"]), check=True)  # noqa: S603
        bwrap_alone = time.perf_counter() - started
        times: dict[str, list[float]] = {"direct": [], "unsandboxed": [], "sandboxed": [], "with quota": []}
        releases: list[float] = []
        for i in range(args.repeat + 1):
            elapsed = {
                "direct": direct(spec_for(root, f"d{i}")),
                "unsandboxed": through(unsandboxed, spec_for(root, f"u{i}")),
                "sandboxed": through(sandboxed, spec_for(root, f"s{i}")),
                "with quota": through(sandboxed, spec_for(root, f"q{i}", quota=True), releases),
            }
            if i:  # the first round warms the caches
                for name, seconds in elapsed.items():
                    times[name].append(seconds)
        times["release"] = releases[1:]
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"a trial that does nothing, median of {args.repeat} launches each:")
    for name, value in median.items():
        spread = statistics.quantiles(times[name], n=4)
        print(
            f"  {name:12s} {value * 1000:7.1f} ms   (quartiles {spread[0] * 1000:.0f}-{spread[2] * 1000:.0f} ms)"
        )
    overhead = median["sandboxed"] - median["direct"]
    keeper = median["unsandboxed"] - median["direct"]
    print(f"  bwrap alone (an empty sandbox running true): {bwrap_alone * 1000:.1f} ms")
    how = "a file system of its own" if sandboxed.quota_fs else "scanned (no file system can be made here)"
    quota = median["with quota"] - median["sandboxed"]
    print(f"the disk quota ({how}) adds {quota * 1000:.1f} ms to a trial's start, ", end="")
    print(f"and its release {median['release'] * 1000:.1f} ms after its end")
    print(f"the sandbox adds {overhead * 1000:.1f} ms per trial to the local runtime as it was ", end="")
    print(
        f"(the keeper {keeper * 1000:.1f} ms of it); goal under 100 ms: {'met' if overhead < 0.1 else 'NOT met'}"
    )
    with tempfile.TemporaryDirectory(prefix="mlops-bench-envs-") as tmp:
        built = environments(Path(tmp), args.repeat)
    return 0 if overhead < 0.1 and built else 1


if __name__ == "__main__":
    sys.exit(main())
