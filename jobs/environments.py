"""Each run's environment, between job 2 and the trials: resolved once, recorded, handed to every trial;
and the one fallback of a trial 0 that fails as code of an older library generation.

The runtimes never build anything: a trial's spec carries the interpreter (local) or the image tag
(Docker) of its run's environment, as the ledger records it.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlops import envs
from mlops.classify import Api
from mlops.domain import RunStatus, TrialStatus
from mlops.envs.boxes import PlainBox
from mlops.envs.images import ImageBuilder
from mlops.envs.local import LocalBuilder
from mlops.envs.policy import SourcePolicy
from mlops.errors import RequirementRefused, SourceError
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.progress import Progress
from mlops.project import read_project
from mlops.runtime.base import Runtime, TrialSpec
from mlops_harness.protocol import FailureClass
from tweak.loop import Execute

ENV_DIR = "envs"


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
    ):
        self.ledger = ledger
        self.progress = progress
        self.install = install
        self.policy = SourcePolicy(allow_sources)
        self.source_builds = source_builds
        store = envs.Store(workspace / ENV_DIR)
        uv = envs.Uv.from_env()
        say = progress.info
        self.builder: envs.Builder
        if runtime.name == "docker":
            self.builder = ImageBuilder(runtime, store, uv, say)  # type: ignore[arg-type]
        else:
            # --unsandboxed: the owner runs trials as plain processes, and so their builds
            box = None if getattr(runtime, "sandboxed", True) else PlainBox()
            # the generations' own venvs (PyTorch's is 6 GB) are built once per machine, not per workspace
            bases = envs.Store(machine_cache / ENV_DIR) if machine_cache is not None else None
            python = str(getattr(runtime, "python"))  # noqa: B009
            self.builder = LocalBuilder(python, store, uv, say, box, bases)
        self.store = store
        self.uv = uv

    def _request(self, run: RunRecord, generation: envs.Generation | None, why: str) -> envs.Request:
        classification = self.ledger.events(run.id)[0].get("data") or {}
        api = (classification.get("classification") or {}).get("api", "")
        install = self.install and read_project(run.code_dir).install
        return envs.Request(
            run.code_dir,
            run.script,
            run.image or "",
            api == Api.KERAS2.value,
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
        """``execute``, with a trial 0 that fails as code of another library generation (class ``api``) in
        the current generation tried once more in the legacy one; the run keeps the one that worked."""

        def run_trial(run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune: Any) -> TrialRecord:
            done = execute(run, trial, spec, prune)
            if (
                trial.number != 0
                or done.status is not TrialStatus.FAILED
                or done.failure_class != FailureClass.API
            ):
                return done
            before = self.of(run)
            if before.generation is not envs.Generation.CURRENT:  # legacy already, or PyTorch code
                return done
            self.progress.info(
                f"   trial 0 failed as code of an older library [{done.failure_class}]: {done.error}; trying it "
                f"once in the {envs.Generation.LEGACY.describe()} environment"
            )
            try:
                legacy = self.of(
                    run,
                    envs.Generation.LEGACY,
                    f"trial 0 failed as {done.failure_class} code in the current one",
                )
            except SourceError as e:
                self.progress.warn(f"the legacy environment cannot be made for run {run.id}: {e}")
                return done
            self._set_aside(spec.trial_dir, before.generation.value)
            again = execute(
                run, trial, replace(spec, python=legacy.python, image=legacy.image or spec.image), prune
            )
            if again.status is TrialStatus.FAILED and again.failure_class == FailureClass.API:
                envs.record(
                    self.ledger,
                    run.id,
                    before,
                    f"the legacy environment failed too; back to {before.describe()}",
                )
            else:
                self.progress.info(f"   run {run.id} keeps the {legacy.generation.describe()} environment")
            return again

        return run_trial

    @staticmethod
    def _set_aside(trial_dir: Path, label: str) -> None:
        """The failed attempt's folder moves to ``<n>.<label>``; the new attempt starts from its source."""
        aside = trial_dir.with_name(f"{trial_dir.name}.{label}")
        shutil.rmtree(aside, ignore_errors=True)
        trial_dir.rename(aside)
        trial_dir.mkdir()
        for name in ("source.py", "params.json"):
            if (aside / name).exists():
                shutil.copy2(aside / name, trial_dir / name)
