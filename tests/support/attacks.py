"""Attacks as pushed code: a repository whose one entry point tries something, run by `mlops run`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.processes import run_cli
from tests.support.repos import ROOT, make_repo

ENTRY = "attack.py"
# Where scripts/sandbox-setup.sh records whether the cloud metadata address is closed to each runtime.
SANDBOX_STATE = ROOT / ".sandbox-state"
# The script ends with a metric, so the run goes as far as it can whatever the attack did.
METRIC = '\nopen("accuracy.txt", "w").write("0.9")\n'


def pushed(tmp_path: Path, name: str, script: str, files: dict[str, str] | None = None) -> Path:
    """A real repository ``tmp_path/name`` whose mlops.yaml names ``attack.py`` (``script``) to train."""
    return make_repo(
        tmp_path / name,
        {ENTRY: script + METRIC, "mlops.yaml": f"entry_points: [{ENTRY}]\n", **(files or {})},
    )


def run_pushed(
    repo: Path,
    workspace: Path,
    runtime: str,
    *flags: str,
    env: dict[str, str] | None = None,
    keep_work: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`mlops run` of the repository: one trial, no restart unless ``flags`` say otherwise; the trial's
    work/ folder kept (what the attack wrote there is checked), unless not ``keep_work``."""
    return run_cli(
        "run",
        str(repo),
        "--workspace",
        str(workspace),
        "--runtime",
        runtime,
        "--max-trials",
        "1",
        "--target",
        "0.5",
        "--max-restarts",
        "0",
        *(["--keep-work"] if keep_work else []),
        *flags,
        cwd=repo.parent,
        env=env,
        timeout=timeout,
    )


def runs(workspace: Path) -> list[dict]:
    """`mlops history --json`: one summary per run, oldest first."""
    done = run_cli("history", "--json", "--workspace", str(workspace), cwd=workspace.parent)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if json.loads(line).get("run")]


def trial_of(workspace: Path, script_run: dict, number: int = 0) -> dict:
    """`mlops show RUN --json`'s entry for one trial."""
    done = run_cli("show", script_run["run"], "--json", "--workspace", str(workspace), cwd=workspace.parent)
    assert done.returncode == 0, done.stderr
    return next(t for t in json.loads(done.stdout)["trial_list"] if t["number"] == number)


def work_file(workspace: Path, script_run: dict, name: str, number: int = 0) -> str | None:
    """A file the script wrote in its working folder (trials/<n>/work), or None."""
    path = Path(script_run["dir"]) / "trials" / str(number) / "work" / name
    return path.read_text() if path.exists() else None


def files_holding(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def sandbox_state(path: Path = SANDBOX_STATE) -> dict[str, str]:
    """What scripts/sandbox-setup.sh recorded, per runtime: "blocked", or "open: why"."""
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def metadata_block(runtime: str) -> str:
    """The state of the metadata block for a runtime's trials, in words for an assertion's message."""
    said = sandbox_state().get(runtime)
    if said is None:
        return (
            f"nothing recorded in {SANDBOX_STATE.name}: scripts/sandbox-setup.sh never ran in this checkout"
        )
    return said
