"""The PyTorch rows of bench/bench_time_to_target.py: Optuna over a hand-written PyTorch model
(bench/torch_optuna.py), run in the environment mlops's local runtime gives a script importing torch and
optuna (the PyTorch generation's venv of the machine's cache, optuna in a small venv over it)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ttt_keras import Result

HERE = Path(__file__).resolve().parent


def torch_python(folder: Path) -> str:
    """The interpreter of mlops's local environment for a script that imports torch, optuna and sklearn."""
    sys.path.insert(0, str(HERE.parent))
    from mlops import envs
    from mlops.config import load_settings
    from mlops.envs.local import LocalBuilder

    code = folder / "torch-env-code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text("import torch\nimport optuna\nimport sklearn\n")
    settings = load_settings(env={})
    if settings.machine_cache is None:
        raise SystemExit("no machine cache for the PyTorch environment (settings: machine_cache)")
    store, uv = envs.Store(folder / "envs"), envs.Uv.from_env()
    builder = LocalBuilder(sys.executable, store, uv, bases=envs.Store(settings.machine_cache / "envs"))
    env = envs.resolve(envs.Request(code, "train.py", "mlops-pytorch", False), builder, store, uv)
    return env.python


def run_optuna_torch(args: argparse.Namespace, target: float, tmp: Path) -> Result:
    python = torch_python(tmp)
    done = subprocess.run(
        [python, str(HERE / "torch_optuna.py"), "--target", str(target)]
        + ["--max-trials", str(args.max_trials), "--max-minutes", str(args.max_minutes)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"torch optuna failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(reached_s=got["reached_s"], trials=got["trials"], ran=got["ran"], best=got["best"])
