"""The corpus of small repositories in tests/fixtures/repos/, each trained as pushed in a real git repo."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.envs import machine_env
from tests.support.repos import ROOT, git

CORPUS = ROOT / "tests" / "fixtures" / "repos"


def manifest() -> dict[str, dict[str, Any]]:
    return dict(json.loads((CORPUS / "manifest.json").read_text())["repos"])


def as_git_repo(
    name: str,
    where: Path,
    without: tuple[str, ...] = (),
    early_stop: str | None = None,
    corpus: Path = CORPUS,
) -> Path:
    """The fixture ``name`` (of ``corpus``) copied to ``where/name`` and committed, as its author pushed it
    (``without`` those of its files; ``early_stop``: its mlops.yaml's ``early_stop:``, added to what it has)."""
    repo = where / name
    shutil.copytree(corpus / name, repo)
    for file in without:
        if (repo / file).is_dir():
            shutil.rmtree(repo / file)
        else:
            (repo / file).unlink()
    if early_stop is not None:
        import yaml

        config = repo / "mlops.yaml"
        settings = (yaml.safe_load(config.read_text()) or {}) if config.exists() else {}
        config.write_text(yaml.safe_dump({**settings, "early_stop": early_stop}))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first version")
    return repo


@dataclass
class Outcome:
    """What trial 0 of a corpus repository gave: a metric, or the class its run failed with."""

    metric: float | None
    failure: str | None
    reason: str
    generation: str | None
    installed: list[str]
    log: str
    run_dir: Path | None = None
    trials: int = 0  # how many trials the run started (0: it failed before trial 0)
    source: str | None = None  # where trial 0's metric came from (metrics.json's source)
    metric_name: str | None = None
    script: str = ""  # the entry point the run trained
    framework: str = ""  # what job 2 said the script trains with (keras, tf.keras, sklearn, ...)
    python: str = ""  # the interpreter of the run's environment (local runtime)
    best_metric: float | None = None  # the run's best trial's
    metrics: list[float | None] = field(default_factory=list)  # every trial's, in order


def train_as_pushed(
    name: str,
    where: Path,
    workspace: Path,
    runtime: str,
    without: tuple[str, ...] = (),
    early_stop: str | None = None,
    corpus: Path = CORPUS,
    **flags: Any,
) -> Outcome:
    """``mlops run`` (one trial) on the corpus repository ``name``, in-process, and what it gave (``flags``:
    more settings; ``without``: files of the repository left out of the push; ``early_stop``: its
    mlops.yaml's ``early_stop:``, ``all`` to stop trial 0's fits early too)."""
    from jobs.pipeline import run_source
    from mlops import envs
    from mlops.config import load_settings
    from mlops.errors import SourceError
    from mlops.ledger import Ledger
    from mlops.progress import Progress

    repo = as_git_repo(name, where, without, early_stop, corpus)
    flags = {"workspace": str(workspace), "runtime": runtime, "max_trials": 1, **flags}
    settings = load_settings(flags, env=machine_env())
    out = io.StringIO()
    try:
        run_source(settings, str(repo), None, new_run=True, progress=Progress(stream=out))
    except SourceError as e:
        out.write(f"error: {e}\n")
    ledger = Ledger(settings.ledger_path)
    try:
        run = [r for r in ledger.runs() if r.source == str(repo)][-1]
        run = ledger.run(run.id)
        trials = ledger.trials(run.id)
        env = envs.recorded(ledger, run.id)
    finally:
        ledger.close()
    first = trials[0] if trials else None
    failure = first.failure_class if first is not None else None
    if first is None and run.reason and run.reason.startswith("["):
        failure = run.reason[1 : run.reason.index("]")]
    return Outcome(
        metric=first.metric if first is not None else None,
        failure=failure,
        reason=(first.hint or first.error or "") if first is not None else (run.reason or ""),
        generation=env.generation.value if env is not None else None,
        installed=list(env.installed) if env is not None else [],
        log=out.getvalue(),
        run_dir=run.dir,
        trials=len(trials),
        source=first.metric_source if first is not None else None,
        metric_name=first.metric_name if first is not None else None,
        script=run.script or "",
        framework=run.framework or "",
        python=(env.python or "") if env is not None else "",
        best_metric=run.best_metric,
        metrics=[t.metric for t in trials],
    )


def run_directly(name: str, script: str, where: Path, python: str = "") -> tuple[float | None, str]:
    """The corpus repository ``name`` run as its author runs it, ``python SCRIPT`` in the script's folder
    (``python``: the interpreter of the run's environment), without mlops: the metric it prints (its
    manifest's ``prints``, times ``scale``), or None, and its output."""
    expected = manifest()[name]
    repo = where / f"{name}.direct"
    shutil.copytree(CORPUS / name, repo)
    folder = (repo / script).parent
    done = subprocess.run(
        [python or sys.executable, (repo / script).name],
        cwd=folder,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    found = re.findall(expected["prints"], done.stdout, flags=re.MULTILINE)
    if done.returncode != 0 or not found:
        return None, done.stdout + done.stderr
    return float(found[-1]) * float(expected.get("scale", 1.0)), done.stdout


def refused_before_any_run(repo: Path, workspace: Path, match: str) -> None:
    """``mlops run`` of ``repo`` fails with a SourceError matching ``match`` and records no run at all."""
    import pytest

    from jobs.pipeline import run_source
    from mlops.config import load_settings
    from mlops.errors import SourceError
    from mlops.ledger import Ledger
    from mlops.progress import Progress

    settings = load_settings({"workspace": str(workspace), "runtime": "local"}, env=machine_env())
    with pytest.raises(SourceError, match=match):
        run_source(settings, str(repo), None, progress=Progress(stream=io.StringIO()))
    ledger = Ledger(settings.ledger_path)
    try:
        assert ledger.runs() == []
    finally:
        ledger.close()
