"""The ``mlops`` command and the harness, run as separate processes the way a user or a runtime runs them."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.repos import ROOT

HARNESS = ROOT / "mlops_harness"  # run as a folder: python HARNESS ARGS


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict | None = None, wrap: list[str] | None = None
) -> subprocess.CompletedProcess:
    """``mlops ARGS`` as a user runs it: a separate process, with its output captured (``wrap``: a
    command it runs under, such as a bwrap that mounts the workspace read-only)."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    full_env.update(env or {})
    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", "jobs.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_harness(
    tmp_path: Path,
    script: str,
    name: str = "train.py",
    extra_files: dict[str, str] | None = None,
    env: dict | None = None,
    timeout: float = 300,
    max_file_bytes: int | None = None,
    python: str | None = None,
) -> tuple[subprocess.CompletedProcess, Path]:
    """The harness on ``script`` (saved as code/<name>), trial folder tmp_path/trial. ``max_file_bytes``: no
    file may grow beyond it (RLIMIT_FSIZE: the kernel refuses the write, as with a full disk). ``python``:
    another environment's interpreter (PyTorch's)."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(textwrap.dedent(script), encoding="utf-8", newline="")
    for fname, text in (extra_files or {}).items():
        (code / fname).parent.mkdir(parents=True, exist_ok=True)
        (code / fname).write_text(textwrap.dedent(text), encoding="utf-8")
    out = tmp_path / "trial"
    source = tmp_path / "variant.py"
    source.write_bytes((code / name).read_bytes())
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLOPS_SEED="0")
    full_env.update(env or {})
    done = subprocess.run(
        [
            python or sys.executable,
            str(HARNESS),
            "--code",
            str(code),
            "--script",
            name,
            "--source",
            str(source),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        preexec_fn=None if max_file_bytes is None else lambda: _limit_files(max_file_bytes),
    )
    return done, out


def run_cli_background(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    log: str = "mlops-background.log",
    module: str = "jobs.cli",
) -> subprocess.Popen[str]:
    """``mlops ARGS`` (or ``python -m MODULE ARGS``, a Jenkins entry point) started and left running, in a
    process group of its own as a Jenkins build's (its output goes to the file ``log`` in ``cwd``)."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    full_env.update(env or {})
    out = (cwd / log).open("w")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _limit_files(size: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
