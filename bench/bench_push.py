"""Push -> first epoch through ``mlops serve``, locally and in Docker.

    python bench/bench_push.py [--pushes 3] [--no-docker]

For each runtime: a git repository holding bench_overhead.py's small Keras script, and ``mlops serve
--runtime R`` started in a folder of its own (its mlops.toml lists the repository; one trial per push).
Then ``--pushes`` commits, one after the other, each a comment line more than the last, each POSTed signed as
GitHub sends it. For each push: seconds from the POST to the 202, and to the first epoch its trial records
(the trial's events file). The first push finds the server just started and builds nothing (the image or
environment is there); the ones after it find the server up: what a team's second push sees.

No process waits yet with its libraries loaded for the next push (the warm pool of issue 26): every push's
trial 0 starts a fresh interpreter in its sandbox, or a fresh container.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_overhead import SCRIPT  # noqa: E402
from tests.support.webhook import post, push_body, serve_process, wait_for  # noqa: E402

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=b@example.com"]


def commit(repo: Path, number: int) -> str:
    """The script with ``number`` comment lines more, committed; its commit id."""
    (repo / "train.py").write_text(SCRIPT + "".join(f"# push {n}\n" for n in range(number)))
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", f"push {number}"], cwd=repo, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def first_epoch_of_new_run(workspace: Path, before: set[Path]) -> bool:
    """Whether a run not in ``before`` has its trial 0's first epoch recorded."""
    for events in (workspace / "runs").glob("*/trials/0/events.jsonl"):
        if events.parents[2] not in before and '"event": "epoch"' in events.read_text():
            return True
    return False


def finished_runs(workspace: Path) -> int:
    with sqlite3.connect(f"file:{workspace / 'ledger.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM runs WHERE status != 'running'").fetchone()[0])


def runtime_rows(root: Path, runtime: str, pushes: int) -> list[tuple[float, float]]:
    """(POST -> 202, POST -> first epoch) for each push to a fresh ``mlops serve --runtime runtime``."""
    folder = root / runtime
    repo = folder / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (folder / "mlops.toml").write_text(f'repositories = ["{repo}"]\nmax_trials = 1\ntarget = 0.5\n')
    workspace = folder / ".mlops"
    rows = []
    with serve_process(folder, "--runtime", runtime) as (url, _, log):
        for number in range(pushes):
            sha = commit(repo, number)
            before = set((workspace / "runs").glob("*")) if (workspace / "runs").exists() else set()
            sent = time.perf_counter()
            answer = post(url, push_body(after=sha, clone_url=str(repo), full_name=""))
            answered = time.perf_counter() - sent
            if answer.status_code != 202:
                raise SystemExit(f"push {number}: {answer.status_code} {answer.text}")
            if not wait_for(lambda before=before: first_epoch_of_new_run(workspace, before), 600):
                raise SystemExit(f"push {number}: no first epoch in 600 s\n{log.read_text()[-3000:]}")
            rows.append((answered, time.perf_counter() - sent))
            # the next push once this one's run is over: one push at a time, as a team pushes
            if not wait_for(lambda n=number: finished_runs(workspace) > n, 600):
                raise SystemExit(f"push {number}: its run did not end in 600 s\n{log.read_text()[-3000:]}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true", help="only the local runtime")
    args = parser.parse_args()
    runtimes = ["local"] + ([] if args.no_docker else ["docker"])
    print(f"push -> first epoch through mlops serve ({args.pushes} pushes in a row; seconds)")
    print(f"  {'runtime':8} {'push':>4} {'202':>7} {'1st epoch':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in runtimes:
            rows = runtime_rows(Path(tmp), runtime, args.pushes)
            for number, (answered, epoch) in enumerate(rows):
                print(f"  {runtime:8} {number + 1:4d} {answered:7.3f} {epoch:10.2f}")
            later = [epoch for _, epoch in rows[1:]]
            if later:
                print(f"  {runtime:8} pushes after the first: median {statistics.median(later):.2f} s")


if __name__ == "__main__":
    main()
