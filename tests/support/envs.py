"""Environments resolved for real (uv, the machine's index) over this interpreter, in a tmp store."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from mlops import envs
from mlops.envs.local import LocalBuilder


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def resolve_local(
    code: Path, store_dir: Path, script: str = "train.py", legacy_api: bool = False, install: bool = True
) -> envs.Environment:
    """The environment of ``script`` in ``code`` for the local runtime, its store in ``store_dir``."""
    store, uv = envs.Store(store_dir), envs.Uv.from_env()
    builder = LocalBuilder(sys.executable, store, uv)
    request = envs.Request(code, script, "mlops-sklearn", legacy_api, install)
    return envs.resolve(request, builder, store, uv)


# Run as a separate process by the tests of builds that are killed or raced: resolve, print the result.
RESOLVE_SCRIPT = """
import json, sys
from pathlib import Path
from tests.support.envs import resolve_local
env = resolve_local(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps(env.to_json()))
"""


def machine_env() -> dict[str, str]:
    """This machine's environment without its MLOPS_* settings: what a test gives ``load_settings`` so that
    the settings are the test's own while uv still finds the machine's package index (UV_*, PIP_*, SSL_*)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
