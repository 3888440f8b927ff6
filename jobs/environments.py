"""Each run's environment, between job 2 and the trials: resolved once, recorded, handed to every trial;
and the one fallback of a trial 0 that fails as code of an older library generation.

The runtimes never build anything: a trial's spec carries the interpreter (local) or the image tag
(Docker) of its run's environment, as the ledger records it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlops import envs, trial_records
from mlops.classify import Api, Framework
from mlops.domain import RunStatus, TrialStatus
from mlops.envs.boxes import PlainBox
from mlops.envs.images import ImageBuilder
from mlops.envs.local import LocalBuilder
from mlops.envs.policy import SourcePolicy
from mlops.errors import RequirementRefused, RuntimeUnavailable, SourceError
from mlops.layout import RunLayout, WorkspaceLayout, machine_envs
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.progress import Progress
from mlops.project import read_project
from mlops.runtime.base import Runtime, TrialSpec
from mlops.trial_files import BadTrialFile
from mlops.vocabulary import KERAS_LAYERS
from mlops_harness.protocol import FailureClass
from monitor.supervisor import set_aside
from tweak.loop import Execute

# Keras 2 code on Keras 3 that fails on what Keras gave, not on an import (older_code).
VALUE_ERRORS = ("AttributeError", "TypeError")
KERAS_TYPES = frozenset(KERAS_LAYERS) | {
    *("Sequential", "Functional", "Model", "History", "KerasTensor", "Variable", "Layer", "Callback"),
    *("Adam", "SGD", "RMSprop", "Adadelta", "Adagrad", "Adamax", "Nadam", "Ftrl", "AdamW"),
}
KERAS_OBJECT = re.compile(r"'(\w+)' object")
KERAS_CALLS = frozenset(
    {"fit", "evaluate", "predict", "fit_generator", "evaluate_generator", "predict_generator"}
)
KERAS_RESULT = re.compile(r"\.history\b|\.(?:evaluate|predict)\(")
FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')


class Environments:
    """Finds, builds and records the environments of a workspace's runs, for one runtime."""

    def __init__(
        self,
        ledger: Ledger,
        progress: Progress,
        runtime: Runtime[Any],
        workspace: Path,
        install: bool,
        allow_sources: tuple[str, ...] = (),
        source_builds: bool = True,
        machine_cache: Path | None = None,
        process_env: Mapping[str, str] | None = None,  # the caller's, read once (Settings.environment)
    ):
        self.ledger = ledger
        self.progress = progress
        self.install = install
        self.policy = SourcePolicy(allow_sources)
        self.source_builds = source_builds
        store = envs.Store(WorkspaceLayout(workspace).envs)
        uv = envs.Uv.from_env(process_env)
        say = progress.info
        self.builder: envs.Builder
        can = runtime.capabilities
        if can.images:  # the runtime is then also the engine that builds them
            self.builder = ImageBuilder(runtime, store, uv, say)  # type: ignore[arg-type]
        elif can.python is not None:
            # --unsandboxed: the owner runs trials as plain processes, and so their builds
            box = None if can.sandboxed else PlainBox()
            # the generations' own venvs (PyTorch's is 6 GB) are built once per machine, not per workspace
            bases = envs.Store(machine_envs(machine_cache)) if machine_cache is not None else None
            self.builder = LocalBuilder(can.python, store, uv, say, box, bases)
        else:
            raise RuntimeUnavailable(f"the {runtime.name} runtime runs neither images nor an interpreter")
        self.store = store
        self.uv = uv

    def _request(self, run: RunRecord, generation: envs.Generation | None, why: str) -> envs.Request:
        install = self.install and read_project(run.code_dir).install
        return envs.Request(
            run.code_dir,
            run.script,
            run.image or "",
            run.api is Api.KERAS2,
            install,
            generation,
            why,
            self.policy,
            self.source_builds,
        )

    def _usable(self, env: envs.Environment) -> bool:
        if env.runtime != self.builder.runtime:
            return False
        if env.python:
            return Path(env.python).exists()
        return not env.image or self.builder.valid({"image": env.image})

    def of(
        self, run: RunRecord, generation: envs.Generation | None = None, why: str = "recorded for this run"
    ) -> envs.Environment:
        """The run's environment: as recorded (still there), else resolved now and recorded."""
        known = envs.recorded(self.ledger, run.id)
        if (
            known is not None
            and (generation is None or known.generation is generation)
            and self._usable(known)
        ):
            return known
        wanted = generation or (known.generation if known is not None else None)
        env = envs.resolve(
            self._request(run, wanted, why), self.builder, self.store, self.uv, self.progress.info
        )
        self._say(env)
        envs.record(self.ledger, run.id, env, env.describe())
        return env

    def _say(self, env: envs.Environment) -> None:
        say = self.progress.info
        why = f" ({env.why})" if env.why else ""
        say(f"   environment: the {env.generation.value} generation{why}, over {env.base}")
        for note in env.notes:
            say(f"   environment: {note}")
        if env.installed:
            how = f"built in {env.built_s:.1f} s" if env.built_s is not None else "built earlier, reused"
            say(f"   environment {env.key}: {how}: {'; '.join(env.installed)}")
        if env.from_source:
            say(
                f"   environment {env.key}: built from source (no wheel), in the sandbox: {', '.join(env.from_source)}"
            )

    def prepare(self, runs: list[RunRecord]) -> list[RunRecord]:
        """Job 2: every unfinished run's environment. A requirement that cannot be installed fails its run,
        class environment, with the file and line that asked for it; SourceError when every run failed."""
        errors = []
        refused = False
        for run in runs:
            if run.status.is_finished():
                continue
            try:
                self.of(run)
            except SourceError as e:
                self.ledger.finish_run(run.id, RunStatus.FAILED, f"[{FailureClass.ENVIRONMENT.value}] {e}")
                errors.append(f"run {run.id}: {e}")
                refused = refused or isinstance(e, RequirementRefused)
        done = [self.ledger.run(r.id) for r in runs]
        if errors and all(r.status is RunStatus.FAILED for r in done):
            # the command's error says it, once; a refused requirement is bad input (exit 2)
            raise (RequirementRefused if refused else SourceError)("; ".join(errors))
        for error in errors:  # the other runs go on
            self.progress.warn(error)
        return done

    def spec(self, run: RunRecord, spec: TrialSpec) -> TrialSpec:
        env = self.of(run)
        return replace(spec, python=env.python, image=env.image or spec.image)

    def fallback(self, execute: Execute) -> Execute:
        """``execute``, with a trial 0 that fails in the current generation as code of an older one (class
        ``api``, or an AttributeError or TypeError on a value Keras gave: see :func:`older_code`) tried once
        more in the legacy one; the run keeps the one that worked."""

        def run_trial(run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune: Any) -> TrialRecord:
            done = execute(run, trial, spec, prune)
            why = older_code(run, done, spec.trial_dir) if trial.number == 0 else None
            if why is None:
                return done
            return self._in_legacy(execute, run, trial, spec, prune, done, why)

        return run_trial

    def _in_legacy(
        self,
        execute: Execute,
        run: RunRecord,
        trial: TrialRecord,
        spec: TrialSpec,
        prune: Any,
        done: TrialRecord,
        why: str,
    ) -> TrialRecord:
        before = self.of(run)
        if before.generation is not envs.Generation.CURRENT:  # legacy already, or PyTorch code
            return done
        self.progress.info(
            f"   trial 0 failed as code of an older library [{done.failure_class}]: {why}; trying it "
            f"once in the {envs.Generation.LEGACY.describe()} environment"
        )
        try:
            legacy = self.of(
                run, envs.Generation.LEGACY, f"trial 0 failed as {done.failure_class} code in the current one"
            )
        except SourceError as e:
            self.progress.warn(f"the legacy environment cannot be made for run {run.id}: {e}")
            return done
        try:
            set_aside(spec.trial_dir, before.generation.value)
        except BadTrialFile as e:  # the failed attempt planted something in place of its inputs
            self.progress.warn(f"trial 0 of run {run.id} is not tried again: {e}")
            return done
        again = execute(
            run, trial, replace(spec, python=legacy.python, image=legacy.image or spec.image), prune
        )
        failed_too = again.status is TrialStatus.FAILED and (
            again.failure_class == FailureClass.API or done.failure_class != FailureClass.API
        )
        if failed_too:
            envs.record(
                self.ledger, run.id, before, f"the legacy environment failed too; back to {before.describe()}"
            )
        else:
            self.progress.info(f"   run {run.id} keeps the {legacy.generation.describe()} environment")
        return again


def older_code(run: RunRecord, done: TrialRecord, trial_dir: Path) -> str | None:
    """Why trial 0's failure looks like code of an older library generation, or None.

    Class ``api`` (an import or a name that moved, a keyword that went away: the harness says so); or, for
    Keras code, an AttributeError or TypeError on what Keras gave: a Keras object that lacks what Keras 2's
    had (``'Dense' object has no attribute 'output_shape'``), or on the script's line that uses what ``fit``,
    ``evaluate``, ``predict`` or a history returned (``np.array2string(h.history['accuracy'][-1]*100)``
    failed so when Keras gave Python floats; the harness gives numpy scalars now). A bug of the script's
    own, on its own values, is not retried: it would fail the same way."""
    if done.status is not TrialStatus.FAILED:
        return None
    if done.failure_class == FailureClass.API:
        return done.error or FailureClass.API.value
    error = done.error or ""
    keras = run.framework in (Framework.KERAS, Framework.TF_KERAS)
    if not keras or done.failure_class != FailureClass.CODE or done.error_type not in VALUE_ERRORS:
        return None
    kind = KERAS_OBJECT.search(error)
    if kind is not None and kind.group(1) in KERAS_TYPES:
        return f"{error} (an object of Keras)"
    try:
        outcome = trial_records.harness_outcome(trial_dir)
    except BadTrialFile:
        return None
    frames = traceback_frames((outcome.traceback or "") if outcome is not None else "")
    line = next((code for file, n, code in frames if n == done.error_line and _is(file, done.error_file)), "")
    source = RunLayout(run.dir).original.read_text(encoding="utf-8") if done.error_file == run.script else ""
    if KERAS_RESULT.search(line) or set(re.findall(r"\b[A-Za-z_]\w*\b", line)) & keras_values(source):
        return f"{error} (on a value Keras returned: {line.strip()})"
    return None


def _is(path: str, relative: str | None) -> bool:
    return bool(relative) and path.replace("\\", "/").endswith("/" + str(relative))


def traceback_frames(text: str) -> list[tuple[str, int, str]]:
    """(file, line, code) of each frame of a Python traceback's text, innermost last."""
    lines = text.splitlines()
    frames = []
    for i, line in enumerate(lines):
        match = FRAME.match(line)
        if match:
            code = lines[i + 1].strip() if i + 1 < len(lines) and not FRAME.match(lines[i + 1]) else ""
            frames.append((match.group(1), int(match.group(2)), code))
    return frames


def keras_values(source: str) -> set[str]:
    """The names a script binds to what Keras returned: ``h = model.fit(...)``, ``loss, acc =
    model.evaluate(...)``, ``p = h.history['accuracy']``, and names made from those."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    assigns = [node for node in ast.walk(tree) if isinstance(node, ast.Assign)]
    names: set[str] = set()
    while True:
        found = {
            target.id
            for node in assigns
            if _from_keras(node.value, names)
            for bound in node.targets
            for target in ast.walk(bound)
            if isinstance(target, ast.Name)
        }
        if found <= names:
            return names
        names |= found


def _from_keras(value: ast.AST, names: set[str]) -> bool:
    for node in ast.walk(value):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in KERAS_CALLS
        ):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "history":
            return True
        if isinstance(node, ast.Name) and node.id in names:
            return True
    return False
