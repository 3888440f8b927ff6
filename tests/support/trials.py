"""A trial ready for a runtime, and a ledger holding it."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mlops.ledger import Ledger
from mlops.runtime.base import Limits, TrialSpec


def trial_spec(
    root: Path,
    name: str,
    script: str,
    image: str = "mlops-sklearn",
    network: bool = True,
    env: dict | None = None,
    **limits,
) -> TrialSpec:
    """A trial of ``script`` (saved as code/<name>.py under root) in workspace root/ws, ready for a runtime."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(script)
    (code / f"{name}.py").write_text(text)
    folder = root / "ws" / "runs" / name / "trials" / "0"
    folder.mkdir(parents=True)
    (folder / "source.py").write_text(text)
    return TrialSpec(
        name,
        0,
        code,
        f"{name}.py",
        folder / "source.py",
        folder,
        image=image,
        network=network,
        limits=Limits(**{"timeout_s": 120, "memory_mb": 1024, **limits}),
        env={"MLOPS_SEED": "0", **(env or {})},
    )


def ledger_trial(spec: TrialSpec, runtime: str = "local"):
    """A ledger in the spec's workspace holding one run with the spec's trial 0, pending."""
    workspace = spec.trial_dir.parents[3]
    ledger = Ledger(workspace / "ledger.db")
    run = ledger.create_run(
        name=spec.run_id,
        source=str(spec.code_dir),
        ref=None,
        commit="c" * 40,
        author="tests",
        code_dir=spec.code_dir,
        script=spec.script,
        classification={"kind": "ann", "image": spec.image},
        runtime=runtime,
        metric="accuracy",
        target=0.8,
        strategy="tpe",
        max_trials=1,
        settings={},
        runs_dir=workspace / "ledger-runs",
    )
    return ledger, run, ledger.add_trial(run.id, 0, [], [], seed=0)
