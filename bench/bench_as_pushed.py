"""As pushed means as pushed (issue 23): every corpus repository of tests/fixtures/repos/ trained as pushed,
compared with the script run directly and with early stopping forced on.

    python bench/bench_as_pushed.py [--runtime local|docker] [--only NAME ...] [--workspace DIR]

For each repository, three runs of trial 0 (one workspace for all, as one mlops serves many pushes):

- **as pushed**: ``mlops run`` with one trial, as every push's trial 0 runs (no early stop);
- **direct**: the script run with ``python SCRIPT`` in a copy of the repository, in the interpreter of the
  run's environment, without mlops, for the repositories whose manifest says what the script prints
  (``prints``); the metric must equal trial 0's within 0.02 for Keras and 1e-6 for scikit-learn;
- **early stop on**: trial 0 with ``early_stop: all`` in the repository's mlops.yaml, a target of 0.5 and a
  patience of 1, so that most fits stop after an epoch or two; it must give the same class of result (a
  metric, or the same failure class) as trial 0 as pushed.

It prints one line per repository and the totals; it asserts nothing (tests/test_as_pushed.py checks a few
representative repositories). The direct run is local whatever ``--runtime`` says: it needs an interpreter.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.corpus import Outcome, manifest, run_directly, train_as_pushed  # noqa: E402

KERAS_TOLERANCE, SKLEARN_TOLERANCE = 0.02, 1e-6


def shown(got: Outcome) -> str:
    return f"{got.metric:.4f}" if got.metric is not None else f"[{got.failure}]"


def kind(got: Outcome) -> str:
    return "metric" if got.metric is not None else str(got.failure)


def one(name: str, runtime: str, workspace: Path, where: Path) -> dict[str, object]:
    flags = manifest()[name].get("flags", {})
    started = time.monotonic()
    pushed = train_as_pushed(name, where / "pushed", workspace, runtime, **flags)
    seconds = time.monotonic() - started
    stopped = {**flags, "target": 0.5, "patience": 1}
    on = train_as_pushed(name, where / "on", workspace, runtime, early_stop="all", **stopped)
    row: dict[str, object] = {"name": name, "pushed": shown(pushed), "on": shown(on), "s": seconds}
    row["same"] = kind(pushed) == kind(on)
    log = on.run_dir / "trials" / "0" / "log.txt" if on.run_dir else None
    row["stops"] = log.read_text(errors="replace").count(" stopped at epoch ") if log and log.exists() else 0
    if "prints" in manifest()[name] and pushed.script:
        local = (
            train_as_pushed(name, where / "local", workspace, "local", **flags)
            if runtime != "local"
            else pushed
        )
        direct, _ = run_directly(name, local.script, where, local.python)
        tolerance = SKLEARN_TOLERANCE if pushed.framework == "sklearn" else KERAS_TOLERANCE
        row["direct"] = f"{direct:.4f}" if direct is not None else "fails"
        equal = direct is not None and pushed.metric is not None and abs(pushed.metric - direct) <= tolerance
        row["equal"] = equal
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runtime", choices=["local", "docker"], default="local")
    parser.add_argument("--only", nargs="*", help="these corpus repositories only")
    parser.add_argument("--workspace", type=Path, help="the workspace (default: a temporary one)")
    args = parser.parse_args()
    names = args.only or sorted(manifest())
    with tempfile.TemporaryDirectory(prefix="bench-as-pushed-") as tmp:
        workspace = args.workspace or Path(tmp) / "ws"
        print(f"{'repository':32} {'as pushed':>11} {'direct':>8} {'equal':>6} {'stop on':>11} {'stops':>5} "
              f"{'same':>5} {'s':>6}")  # fmt: skip
        rows = []
        for name in names:
            row = one(name, args.runtime, workspace, Path(tmp) / name)
            rows.append(row)
            equal = "-" if "equal" not in row else ("yes" if row["equal"] else "NO")
            print(
                f"{name:32} {row['pushed']:>11} {row.get('direct', '-'):>8} {equal:>6} {row['on']:>11} "
                f"{row['stops']:>5} {'yes' if row['same'] else 'NO':>5} {row['s']:>6.0f}",
                flush=True,
            )
    compared = [r for r in rows if "equal" in r]
    print(
        f"\n{len(rows)} repositories on {args.runtime}: {sum(bool(r['same']) for r in rows)} give the same class "
        f"of result with early stopping on as off; {sum(bool(r['equal']) for r in compared)} of {len(compared)} "
        "run directly give trial 0's metric (0.02 Keras, 1e-6 scikit-learn)"
    )


if __name__ == "__main__":
    main()
