"""The harness stays out of the script's way: its folder and mlops's own packages never shadow the user's
modules, and it imports nothing but the standard library until the script imports a library."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mlops_harness.protocol import EVENTS_FILE, METRICS_FILE, EventKind, ExitCode, read_events
from tests.support.processes import HARNESS, run_harness
from tests.support.repos import ROOT


def test_the_harness_folder_does_not_shadow_the_users_modules(tmp_path):
    done, out = run_harness(
        tmp_path,
        "import config, report, secrets\nprint(config.VALUE, report.VALUE)\n"
        "secrets.token_hex(4)\nopen('accuracy.txt', 'w').write('1')\n",
        extra_files={"config.py": "VALUE = 'users config'", "report.py": "VALUE = 'users report'"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "users config users report" in done.stdout


def test_our_own_packages_and_modules_do_not_shadow_the_users_either(tmp_path):
    # The harness's folder (metrics.py, protocol.py, ...) and the repository holding it (jobs/, monitor/,
    # mlops/) come after the user's own path entries only if they are still on sys.path: they must not be.
    names = ("jobs", "monitor", "mlops", "metrics", "protocol", "runner")
    done, out = run_harness(
        tmp_path,
        "import sys\nsys.path.append('lib')\n"
        f"import {', '.join(names)}\n"
        f"print('|'.join(m.VALUE for m in ({', '.join(names)})))\n"
        "open('accuracy.txt', 'w').write('1')\n",
        extra_files={f"lib/{name}.py": f"VALUE = 'users {name}'" for name in names},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "|".join(f"users {name}" for name in names) in done.stdout


TORCH_IMPORTERS = ("torch_hooks", "torch_training", "torch_checkpoints", "torch_model", "lightning_hooks")
BARE_MODULES = [
    f"mlops_harness.{p.stem}"
    for p in sorted(HARNESS.glob("*.py"))
    # These import keras or torch: each is imported by a post-import hook, only once the script has imported it.
    if p.stem not in ("__main__", "keras_hooks", "keras_checkpoints", *TORCH_IMPORTERS)
]


def test_the_harness_imports_in_a_bare_interpreter_and_brings_in_nothing_but_the_standard_library():
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"for name in {BARE_MODULES!r}:\n"
        "    __import__(name)\n"
        "others = sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names\n"
        "                and m.split('.')[0] not in ('__main__', 'mlops_harness'))\n"
        "print(json.dumps(others))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert len(BARE_MODULES) >= 9


def test_the_harness_runs_a_plain_script_in_a_bare_interpreter(tmp_path):
    code, out = tmp_path / "code", tmp_path / "trial"
    code.mkdir()
    (code / "train.py").write_text(
        "import random, sys\n"
        "assert not any('site-packages' in p for p in sys.path), sys.path\n"
        "open('accuracy.txt', 'w').write(str(0.5 + random.random() / 10))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(HARNESS), "--code", str(code), "--script", "train.py"]
        + ["--source", str(code / "train.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, MLOPS_SEED="0"),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["source"] == "file:accuracy.txt" and 0.5 <= metrics["value"] <= 0.6
    kinds = [e.kind for e in read_events(out / EVENTS_FILE)]
    assert kinds == [EventKind.STARTED, EventKind.METRIC, EventKind.MODEL, EventKind.FINISHED]
    model = read_events(out / EVENTS_FILE)[2]
    assert model.get("saved") is False and "no Keras model or scikit-learn estimator" in model.get("error")
    assert "[mlops] running train.py" in done.stdout
