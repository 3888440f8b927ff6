"""The corpus of small repositories in tests/fixtures/repos/, each trained as pushed in a real git repo."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.repos import ROOT, git

CORPUS = ROOT / "tests" / "fixtures" / "repos"


def manifest() -> dict[str, dict[str, Any]]:
    return dict(json.loads((CORPUS / "manifest.json").read_text())["repos"])


def as_git_repo(name: str, where: Path, without: tuple[str, ...] = ()) -> Path:
    """The fixture ``name`` copied to ``where/name`` and committed, as its author pushed it (``without``
    those of its files)."""
    repo = where / name
    shutil.copytree(CORPUS / name, repo)
    for file in without:
        if (repo / file).is_dir():
            shutil.rmtree(repo / file)
        else:
            (repo / file).unlink()
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


def train_as_pushed(
    name: str, where: Path, workspace: Path, runtime: str, without: tuple[str, ...] = (), **flags: Any
) -> Outcome:
    """``mlops run`` (one trial) on the corpus repository ``name``, in-process, and what it gave (``flags``:
    more settings; ``without``: files of the repository left out of the push)."""
    from jobs.pipeline import run_source
    from mlops import envs
    from mlops.config import load_settings
    from mlops.errors import SourceError
    from mlops.ledger import Ledger
    from mlops.progress import Progress

    repo = as_git_repo(name, where, without)
    flags = {"workspace": str(workspace), "runtime": runtime, "max_trials": 1, **flags}
    settings = load_settings(flags, env={})
    out = io.StringIO()
    try:
        run_source(settings, str(repo), None, new_run=True, progress=Progress(stream=out))
    except SourceError as e:
        out.write(f"error: {e}\n")
    ledger = Ledger(settings.ledger_path)
    try:
        run = [r for r in ledger.runs() if r.source == str(repo)][-1]
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
    )


def refused_before_any_run(repo: Path, workspace: Path, match: str) -> None:
    """``mlops run`` of ``repo`` fails with a SourceError matching ``match`` and records no run at all."""
    import pytest

    from jobs.pipeline import run_source
    from mlops.config import load_settings
    from mlops.errors import SourceError
    from mlops.ledger import Ledger
    from mlops.progress import Progress

    settings = load_settings({"workspace": str(workspace), "runtime": "local"}, env={})
    with pytest.raises(SourceError, match=match):
        run_source(settings, str(repo), None, progress=Progress(stream=io.StringIO()))
    ledger = Ledger(settings.ledger_path)
    try:
        assert ledger.runs() == []
    finally:
        ledger.close()
