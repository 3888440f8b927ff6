"""The harness's entry point: run the script as ``__main__`` with the hooks in place, then write its result.

Usage::

    python mlops_harness --code CODE_DIR --script REL/PATH.py --source VARIANT.py --out TRIAL_DIR
    python mlops_harness --check-model --model MODEL_DIR --out CHECK_DIR     (see model_check.py)

Files written into TRIAL_DIR (names and exit codes in ``protocol``): ``work/`` (a copy of the code, the
working directory), ``metrics.json``, ``accuracy.txt``, ``outcome.json``, ``events.jsonl`` (what happened,
one JSON object per line, kept across restarts), ``checkpoints/`` and ``model/`` (the model behind the
metric, see model_saver.py).
"""

from __future__ import annotations

import argparse
import builtins
import io
import os
import random
import runpy
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops_harness import (
    ahead,
    compat,
    datasets,
    failures,
    legacy_paths,
    model_saver,
    sklearn_hooks,
    torch_loops,
    torchvision_data,
)
from mlops_harness.final_metric import NO_METRIC, NO_METRIC_TORCH, final_metric, measured
from mlops_harness.guards import Guards
from mlops_harness.imports import Hook, PostImportHooks
from mlops_harness.metrics import Origin
from mlops_harness.protocol import (
    ACCURACY_FILE,
    CHECKPOINT_DIR,
    ENV_SEED,
    METRICS_FILE,
    OUTCOME_FILE,
    WORK_DIR,
    EventKind,
    ExitCode,
    FailureClass,
    ScriptFailure,
    to_json,
    write_atomic,
)
from mlops_harness.recorder import Recorder, say
from mlops_harness.workdir import IPythonShim, error_location, prepare_work, relative_to

PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
# The modules of get_file and its validate_file: Keras 3, Keras 2 (2.13 and later, older), tf_keras.
KERAS_GET_FILE = (
    "keras.src.utils.file_utils",
    "keras.src.utils.data_utils",
    "keras.utils.data_utils",
    "tf_keras.src.utils.data_utils",
)


def hooks(rec: Recorder, seed: int | None) -> dict[str, Hook]:
    """The post-import hooks: module name -> what to do with it once the script (or a library) imports it."""

    def keras(module: ModuleType) -> None:
        from mlops_harness import keras_hooks  # it imports keras, which is imported by now

        keras_hooks.install(module, rec, seed)

    def torch(module: ModuleType) -> None:
        from mlops_harness import torch_hooks  # it imports torch, which is imported by now

        torch_hooks.install(module, rec, seed)

    def torchmetrics(module: ModuleType) -> None:
        from mlops_harness import torch_hooks

        torch_hooks.install_torchmetrics(module, rec)

    def lightning(module: ModuleType) -> None:
        from mlops_harness import lightning_hooks, torch_hooks

        lightning_hooks.install(module, rec, torch_hooks.install(sys.modules["torch"], rec, seed))

    table: dict[str, Hook] = {
        "keras": keras,
        **compat.HOOKS,  # keras.utils: old module paths read as attributes, plot_model without pydot
        "sklearn.base": lambda m: sklearn_hooks.install_base(m, rec),
        "sklearn.metrics": lambda m: sklearn_hooks.install_metrics(m, rec),
        "sklearn.cluster": lambda m: sklearn_hooks.install_cluster(m, rec),
        "sklearn.datasets": lambda m: sklearn_hooks.install_datasets(m, rec),
        "torch": torch,
        "torchmetrics": torchmetrics,
        "lightning.pytorch": lightning,
        "pytorch_lightning": lightning,
        "torchvision.datasets.utils": torchvision_data.install_utils,  # an imported file used as it is
        "torchvision.datasets.vision": torchvision_data.install_vision,  # linked under the script's root=
    }
    for where in KERAS_GET_FILE:  # $KERAS_HOME in every generation; an imported data set used as it is
        table[where] = datasets.keras_get_file
    if seed is not None:
        table["numpy"] = lambda m: m.random.seed(seed)
    return table


def isolate_path(script_dir: Path) -> None:
    """The script's folder first on ``sys.path``; neither the harness's folder nor the one holding it (the
    repository, with mlops's own packages) may shadow the user's modules or the standard library's."""
    ours = {PACKAGE_DIR, os.path.dirname(PACKAGE_DIR)}
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") not in ours]
    sys.path.insert(0, str(script_dir))


def missing(label: str, path: Path) -> int:
    print(f"mlops harness: {label} {path} does not exist", file=sys.stderr)
    return ExitCode.BAD_INVOCATION


def run(args: argparse.Namespace) -> int:
    """The steps of a trial: open its folder, hook the imports, wait for the go when started ahead, set the
    script's world up, run it, choose its metric, write what it gave."""
    code, out, source = Path(args.code).resolve(), Path(args.out).resolve(), Path(args.source).resolve()
    if not code.exists():
        return missing("code folder", code)
    seed = int(os.environ[ENV_SEED]) if os.environ.get(ENV_SEED) else None
    rec = open_trial(out)
    install_hooks(rec, seed)
    if args.wait_for and not ahead.started_ahead(code / args.script, Path(args.wait_for), args.wait_s):
        return ExitCode.OK  # never given its trial: nothing was run, nothing is written
    if not source.exists():  # started ahead, it is written just before the go
        return missing("source", source)
    script_path, guards = set_up(args.script, code, source, out, rec)
    ended = run_and_class(args.script, script_path, out / WORK_DIR, rec, guards)
    finish_training()
    os.chdir(out)
    kmeans, chosen, origin = choose(rec, ended, script_path.parent, guards, seed)
    write_result(rec, ended, kmeans, chosen, origin, out)
    return ended.exit_code


@dataclass
class Ended:
    """How the script ended: the outcome to write (status, error fields), its exit code, how long it ran."""

    outcome: dict[str, Any]
    exit_code: ExitCode = ExitCode.OK
    duration: float = 0.0


def open_trial(out: Path) -> Recorder:
    """The trial folder made (or reopened after a restart, stale results removed) and its recorder."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CHECKPOINT_DIR).mkdir(exist_ok=True)
    for stale in (OUTCOME_FILE, METRICS_FILE, ACCURACY_FILE):
        (out / stale).unlink(missing_ok=True)
    return Recorder(out, out / WORK_DIR)


def install_hooks(rec: Recorder, seed: int | None) -> None:
    """The import hooks in place, and the seed given to what is already imported."""
    sys.meta_path.insert(0, PostImportHooks(hooks(rec, seed)))
    sys.meta_path.append(compat.NpUtilsAlias())  # last: only for a name no real module has
    legacy_paths.install()  # asked last: old Keras 2 module paths, only when the real module is missing
    if seed is not None:
        random.seed(seed)
        numpy = sys.modules.get("numpy")  # imported before us (a sitecustomize): its hook will not fire
        if numpy is not None:
            numpy.random.seed(seed)


def set_up(script: str, code: Path, source: Path, out: Path, rec: Recorder) -> tuple[Path, Guards]:
    """The work folder, the imported data sets, the guards, no standard input, the script's folder as the
    working directory and first on the path; returns the script to run and the guards."""
    work_root = out / WORK_DIR
    script_path = prepare_work(code, script, source, out)
    imported = datasets.link_imported(os.environ)
    if imported:
        more = f" and {len(imported) - 5} more" if len(imported) > 5 else ""
        say(f"imported data sets in the cache: {', '.join(sorted(imported)[:5])}{more}")
    guards = Guards(out, work_root, say, rec.events.write, code_dir=code)
    guards.install()
    os.environ.setdefault("MPLBACKEND", "Agg")
    vars(builtins)["get_ipython"] = IPythonShim
    devnull = open(os.devnull)  # noqa: SIM115 (stays open for the script's lifetime)
    os.dup2(devnull.fileno(), 0)
    sys.stdin = devnull
    os.chdir(script_path.parent)
    isolate_path(script_path.parent)
    sys.argv = [str(script_path)]
    return script_path, guards


def run_and_class(script: str, script_path: Path, work_root: Path, rec: Recorder, guards: Guards) -> Ended:
    """Run the script; what it raised (or an exit status it gave) becomes a classed failure."""
    say(f"running {script}")
    rec.events.write(EventKind.STARTED, script=script, pid=os.getpid())
    started = time.time()
    ended = Ended({"status": "ok", "script": script})
    try:
        run_script(script_path, work_root)
    except SystemExit as e:
        if e.code not in (None, 0):
            exited = ScriptFailure(
                error=f"the script called sys.exit({e.code!r})",
                error_type=type(e).__name__,
                failure_class=FailureClass.CODE,
                hint=f"the script ended itself with exit status {e.code!r}",
            )
            ended.outcome.update(status="error", **exited.fields())
            ended.exit_code = ExitCode.SCRIPT_ERROR
    except BaseException as e:  # noqa: BLE001 (everything the user's code raises is a trial result)
        ended.outcome.update(status="error", **raised(e, script_path, work_root, guards).fields())
        ended.exit_code = ExitCode.SCRIPT_ERROR
        traceback.print_exc()
    ended.duration = time.time() - started
    return ended


def raised(e: BaseException, script_path: Path, work_root: Path, guards: Guards) -> ScriptFailure:
    """What the script raised, located in its own code and classed (see failures.py)."""
    filename, line = error_location(e, script_path)
    message = f"{type(e).__name__}: {e}".strip()
    if isinstance(e, EOFError):
        message += " (the script asked for input, but a training has no standard input)"
    where = relative_to(filename, work_root)
    failure = failures.classify(e, work_root, script_path, where, line, guards.prompts, guards.answers)
    return ScriptFailure(
        error=message.splitlines()[0] if message else type(e).__name__,
        error_type=type(e).__name__,
        failure_class=failure.cls,
        hint=failure.hint,
        file=where,
        line=line,
        traceback=traceback.format_exc(),
    )


def choose(
    rec: Recorder, ended: Ended, folder: Path, guards: Guards, seed: int | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Origin]:
    """The clustering measured, the trial's metric chosen; a failure after a measured metric becomes a
    warning, and a script that ended well without a metric ends with NO_METRIC."""
    kmeans = None
    try:
        kmeans = sklearn_hooks.measure_kmeans(rec, seed)
    except Exception as e:  # noqa: BLE001
        say(f"warning: could not measure the clustering: {e}")
    chosen, origin = final_metric(rec, ended.exit_code == ExitCode.OK, folder, guards, seed)
    if chosen is not None and ended.exit_code == ExitCode.SCRIPT_ERROR and measured(rec, chosen):
        # It trained and measured, then failed (a plot, a save, a folder of its author's machine): the
        # metric stands, and the failure is a warning of the trial.
        outcome = ended.outcome
        after = {
            k: outcome.pop(k)
            for k in ("error", "error_type", "file", "line", "failure_class", "hint")
            if k in outcome
        }
        outcome.pop("traceback", None)
        outcome.update(status="ok", failed_after_metric=after)
        ended.exit_code = ExitCode.OK
        where = f" at {after.get('file')}:{after.get('line')}" if after.get("line") else ""
        say(f"warning: the metric was measured, then the script failed{where}: {after.get('error')}")
    if chosen is None and ended.exit_code == ExitCode.OK:
        ended.outcome.update(
            status="no_metric", error=NO_METRIC_TORCH if "torch" in sys.modules else NO_METRIC
        )
        ended.exit_code = ExitCode.NO_METRIC
    return kmeans, chosen, origin


def write_result(
    rec: Recorder,
    ended: Ended,
    kmeans: dict[str, Any] | None,
    chosen: dict[str, Any] | None,
    origin: Origin,
    out: Path,
) -> None:
    """metrics.json, accuracy.txt and the model when there is a metric (metrics.json too on a failure),
    then outcome.json and the last event."""
    exit_code, outcome, duration = ended.exit_code, ended.outcome, ended.duration
    metrics: dict[str, Any] = {
        "history": rec.history,
        "observations": rec.observations,
        "duration_s": round(duration, 3),
        "epochs": len(rec.history),
        "resumed": rec.resumed,
        "stopped": rec.stopped,
        "inputs": rec.inputs,
    }
    if kmeans is not None:
        metrics["kmeans"] = kmeans
    if chosen is not None:
        metrics.update(chosen)
        write_atomic(out / METRICS_FILE, to_json(metrics))
        write_atomic(out / ACCURACY_FILE, f"{chosen['value']:.6f}\n")
        rec.events.write(EventKind.METRIC, **chosen)
        say(f"metric {chosen['metric']}={chosen['value']:.4f} (from {chosen['source']})")
        if exit_code == ExitCode.OK:
            save_model(rec, origin, chosen["source"], out)
    elif exit_code != ExitCode.OK:
        write_atomic(out / METRICS_FILE, to_json(metrics))
    if outcome["status"] != "ok":
        say(f"error: {outcome['error']}")
    outcome["exit_code"] = int(exit_code)
    outcome["duration_s"] = round(duration, 3)
    write_atomic(out / OUTCOME_FILE, to_json(outcome))
    rec.events.write(
        EventKind.FINISHED,
        status=outcome["status"],
        exit_code=int(exit_code),
        duration_s=outcome["duration_s"],
    )
    rec.events.close()


def run_script(script: Path, work_root: Path) -> None:
    """Run the script as ``__main__``; a PyTorch program with its epoch loops followed (torch_loops.py: a
    killed training resumes), ended early by mlops or not."""
    if not torch_loops.is_torch_program(script):
        runpy.run_path(str(script), run_name="__main__")
        return
    torch_loops.install(work_root)
    try:
        torch_loops.run_main(script)
    except torch_loops.TrialEnded as e:  # mlops stopped the training early, its metric recorded
        say(f"the training ends here ({e}); the script's own metric of that epoch is the trial's")


def finish_training() -> None:
    """The script ended by itself: a PyTorch training's last epoch not yet said is said now."""
    hooks = sys.modules.get("mlops_harness.torch_hooks")
    if hooks is not None:
        hooks.finish()


def save_model(rec: Recorder, origin: Origin, source: str, out: Path) -> None:
    """The model behind the metric into out/model/ (a failure is a warning: the metric stands)."""
    try:
        model_saver.save_chosen(rec.models, origin, source, rec.events, out, rec.work_root, say)
    except Exception as e:  # noqa: BLE001 (saving never fails a trial)
        say(f"warning: the model was not saved: {type(e).__name__}: {e}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--check-model"]:
        from mlops_harness import model_check

        return model_check.main(argv[1:])
    parser = argparse.ArgumentParser(prog="harness", description="Run a training script, collect its metric.")
    parser.add_argument("--code", required=True, help="the checkout (read-only)")
    parser.add_argument("--script", required=True, help="the entry point, relative to --code")
    parser.add_argument("--source", required=True, help="the variant's source, run in the script's place")
    parser.add_argument("--out", required=True, help="the trial folder (read-write)")
    parser.add_argument("--wait-for", help="started ahead: load the libraries, run once this file exists")
    parser.add_argument("--wait-s", type=float, default=3600.0, help="with --wait-for: give up after this")
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    return run(args)
