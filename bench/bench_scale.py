"""Trials on Ray, measured side by side on this machine: the overhead of a Ray trial over a local one, and
trials per hour on a cluster of one and of two worker nodes.

    python bench/bench_scale.py [--trials 8]

Each trial is a real harness run of a small scikit-learn training (a decision tree on the digits). The
clusters are started here on 127.0.0.1 (a head without CPUs and one or two workers of 2 logical CPUs each),
so on a machine of 2 cores the second node adds scheduling slots, not cores: read the trials-per-hour
figures as the cost of the layer, and expect them to scale with real machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlops.runtime.base import Limits, TrialSpec  # noqa: E402
from mlops.runtime.local import LocalRuntime  # noqa: E402
from tests.support.ray_cluster import start_cluster  # noqa: E402

SCRIPT = """
from sklearn.datasets import load_digits
from sklearn.tree import DecisionTreeClassifier
X, y = load_digits(return_X_y=True)
print(DecisionTreeClassifier(random_state=0).fit(X[:1200], y[:1200]).score(X[1200:], y[1200:]))
"""


def spec(root: Path, n: int) -> TrialSpec:
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "tree.py").write_text(textwrap.dedent(SCRIPT))
    folder = root / "ws" / "runs" / "bench" / "trials" / str(n)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "source.py").write_text(textwrap.dedent(SCRIPT))
    return TrialSpec(
        "bench", n, code, "tree.py", folder / "source.py", folder, limits=Limits(timeout_s=300, cpus=1)
    )


def one(runtime, s: TrialSpec) -> float:  # noqa: ANN001
    started = time.perf_counter()
    handle = runtime.run(s)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    if not outcome.ok:
        raise SystemExit(f"trial {s.name} did not succeed: {outcome.describe()}")
    return time.perf_counter() - started


def per_hour(runtime, root: Path, trials: int, parallel: int) -> float:  # noqa: ANN001
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda n: one(runtime, spec(root, n)), range(trials)))
    return trials / (time.perf_counter() - started) * 3600


def main() -> None:
    from mlops.runtime.ray_runtime import RayRuntime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        local = LocalRuntime(root / "ws")
        local_times = [one(local, spec(root / "local", n)) for n in range(5)]
        for workers in (1, 2):
            cluster = start_cluster(workers=workers)
            try:
                ray_runtime = RayRuntime.connect(root / f"ray{workers}" / "ws", cluster.address)
                if workers == 1:
                    ray_times = [one(ray_runtime, spec(root / "ray-one", n)) for n in range(5)]
                    overhead = statistics.median(ray_times) - statistics.median(local_times)
                    rows.append(("local trial (median of 5)", f"{statistics.median(local_times):6.2f} s"))
                    rows.append(("Ray trial (median of 5)", f"{statistics.median(ray_times):6.2f} s"))
                    rows.append(("overhead of Ray per trial", f"{overhead:6.2f} s"))
                rate = per_hour(ray_runtime, root / f"rate{workers}", args.trials, parallel=2 * workers)
                rows.append(
                    (f"trials per hour, {workers} worker node(s), {2 * workers} at once", f"{rate:6.0f}")
                )
            finally:
                cluster.stop()
        rows.append(
            ("local, 2 at once", f"{per_hour(local, root / 'rate-local', args.trials, 2):6.0f} per hour")
        )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:{width}s}  {value}")


if __name__ == "__main__":
    main()
