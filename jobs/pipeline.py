"""The chain of jobs, composed: pull -> classify and plan -> train -> tweak and retrain -> notify.

``mlops run`` calls :func:`run_source`, which runs every step in one process. The Jenkins entry points
(``jobs/job1_pull.py`` ... ``job6_monitor.py``) call the same step functions one per process, passing
what they made through the ledger. Each step that works on a run holds its lock first (one process per
commit and script at a time, :mod:`jobs.runlock`); job 5's step is in :mod:`jobs.results`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.context import Context
from jobs.environments import Environments
from jobs.plan import current_runs, step_plan
from jobs.results import leaderboard, model_line, send_notifications, step_report
from jobs.runlock import key
from jobs.stopping import trials_stop_on_signals
from mlops import images, report_plots
from mlops.config import STOP_MARGIN, Settings
from mlops.domain import RuntimeName, trial_seed
from mlops.errors import ConfigError, LedgerError, RuntimeUnavailable
from mlops.layout import RunLayout, TrialLayout, WorkspaceLayout
from mlops.ledger import RunRecord
from mlops.load_check import ModelCheck
from mlops.model_store import ModelPolicy
from mlops.notify import Notifier
from mlops.progress import Progress
from mlops.project import mapped_data, read_project
from mlops.pull import Checkout, pull
from mlops.runtime.base import Limits, Runtime, TrialSpec
from mlops.runtime.local import LocalRuntime
from mlops_harness.protocol import (
    ENV_CHECKPOINT_EVERY_BATCHES,
    ENV_CLUSTER_METRIC,
    ENV_IMPORT_WORKSPACE,
    ENV_PATIENCE,
    ENV_SEED,
    ENV_STOP_AT,
    write_atomic,
)
from monitor.supervisor import RestartPolicy, Supervisor
from monitor.watch import watch
from tweak.loop import Tuner
from tweak.stops import Budget

__all__ = [
    "Context",
    "current_runs",
    "leaderboard",
    "model_line",
    "send_notifications",
    "step_plan",
    "step_report",
]


# -- job 1 ----------------------------------------------------------------------------------------------


def step_pull(ctx: Context, source: str, ref: str | None) -> Checkout:
    ctx.progress.job(1, f"pull {source}" + (f" at {ref}" if ref else ""))
    checkout = pull(source, ref, ctx.settings.workspace, ctx.ledger)
    again = " (already in the workspace)" if checkout.reused else ""
    ctx.progress.info(f"   commit {checkout.commit[:12]} by {checkout.author}: {checkout.message}{again}")
    if checkout.dirty:
        ctx.progress.warn(f"{source} has uncommitted changes; only what is committed is trained")
    write_atomic(
        WorkspaceLayout(ctx.settings.workspace).last_pull,
        json.dumps(
            {
                "source": checkout.source,
                "ref": checkout.ref,
                "commit": checkout.commit,
                "root": str(checkout.root),
                "subdir": checkout.subdir,
                "entry": checkout.entry,
                "author": checkout.author,
            }
        ),
    )
    return checkout


def last_pull(settings: Settings) -> Checkout:
    path = WorkspaceLayout(settings.workspace).last_pull
    if not path.exists():
        raise LedgerError(f"nothing pulled yet in {settings.workspace} (run job 1 first)")
    d = json.loads(path.read_text())
    return Checkout(
        d["source"],
        d["ref"],
        d["commit"],
        d["author"],
        "",
        Path(d["root"]),
        d["subdir"],
        d["entry"],
        reused=True,
    )


# -- job 2 ----------------------------------------------------------------------------------------------


def choose_runtime(ctx: Context) -> Runtime[Any]:
    wanted = ctx.settings.runtime
    if ctx.settings.unsandboxed and wanted is not RuntimeName.LOCAL:
        raise ConfigError("--unsandboxed is only taken with --runtime local, never chosen by auto")
    if wanted is RuntimeName.RAY:
        try:
            from mlops.runtime.ray_runtime import RayRuntime
        except ImportError as e:
            raise RuntimeUnavailable(
                f"--runtime ray needs Ray installed here (pip install 'ray[default]'): {e}"
            ) from e
        cluster = RayRuntime.connect(
            ctx.settings.workspace,
            ctx.settings.ray_address,
            ctx.settings.storage,
            environment=ctx.settings.environment,
        )
        ctx.progress.info(f"   runtime: ray ({cluster.describe()})")
        return cluster
    if wanted in (RuntimeName.DOCKER, RuntimeName.AUTO):
        from mlops.runtime import docker as docker_runtime

        if wanted is RuntimeName.DOCKER or docker_runtime.engine_available(
            environment=ctx.settings.environment
        ):
            runtime = docker_runtime.DockerRuntime.from_env(
                workspace=ctx.settings.workspace, environment=ctx.settings.environment
            )
            ctx.progress.info(f"   runtime: docker ({runtime.describe()})")
            return runtime
        why = " (no Docker engine answers; --runtime docker to insist)"
    else:
        why = ""
    local = LocalRuntime(
        workspace=ctx.settings.workspace,
        sandboxed=not ctx.settings.unsandboxed,
        caller_env=ctx.settings.environment.variables,
    )
    if local.sandboxed:
        ctx.progress.info(f"   runtime: {local.describe()}{why}")
    else:
        ctx.progress.warn(f"runtime: {local.describe()} (--unsandboxed)")
    return local


# -- jobs 3 and 4 ---------------------------------------------------------------------------------------


def trial_cpus(settings: Settings, number: int = 1) -> float | None:
    """The CPUs of one trial: as set, or this machine's cores split between the trials run at once (so
    parallel trials do not fight over every core; Keras and numpy size their thread pools from it).
    Trial 0 always runs alone, on the whole machine."""
    if settings.cpus is not None or settings.parallel <= 1 or number == 0:
        return settings.cpus
    return max(1.0, (os.cpu_count() or 1) / settings.parallel)


def spec_for(settings: Settings) -> Callable[[RunRecord, int], TrialSpec]:
    # The variables the operator lets trainings see, read once; nothing else of this environment is passed.
    variables = settings.environment.variables
    passed = {name: variables[name] for name in settings.trial_env if name in variables}

    def make(run: RunRecord, number: int) -> TrialSpec:
        folder = RunLayout(run.dir).trial(number)
        project = read_project(run.code_dir)
        env = {
            **project.env,  # the pushed repository's own constants (mlops.yaml)
            **passed,
            ENV_SEED: str(trial_seed(run.settings.seed, number)),
            ENV_CLUSTER_METRIC: run.settings.cluster_metric.value,
        }
        stops = project.early_stop.applies_to(number)  # trial 0 runs as pushed (docs/harness.md)
        if stops:
            env[ENV_PATIENCE] = str(settings.patience)
        if settings.checkpoint_every_batches:
            env[ENV_CHECKPOINT_EVERY_BATCHES] = str(settings.checkpoint_every_batches)
        if settings.workspace.resolve() != Settings().workspace.resolve():  # what `mlops datasets` reads
            env[ENV_IMPORT_WORKSPACE] = str(settings.workspace)
        if settings.stop_at_target and stops:
            env[ENV_STOP_AT] = str(round(run.settings.target + STOP_MARGIN, 6))
        return TrialSpec(
            run_id=run.id,
            trial=number,
            code_dir=run.code_dir,
            script=run.script,
            source_file=folder.source,
            trial_dir=folder.dir,
            image=images.for_gpus(run.image or "", settings.gpus),
            gpus=settings.gpus,
            limits=Limits(
                timeout_s=settings.timeout_s,
                memory_mb=settings.memory_mb,
                cpus=trial_cpus(settings, number),
                pids=settings.pids,
                disk_mb=settings.disk_mb,
                disk_files=settings.disk_files,
            ),
            network=settings.network,
            env=env,
            repository=run.source,
            data=mapped_data(run.code_dir, settings.data, settings.workspace, settings.data_roots),
        )

    return make


def environments(ctx: Context, runtime: Runtime[Any]) -> Environments:
    s = ctx.settings
    return Environments(
        ctx.ledger,
        ctx.progress,
        runtime,
        s.workspace,
        s.install,
        s.allow_sources,
        s.source_builds,
        machine_cache=s.machine_cache,
        process_env=s.environment.variables,
    )


def make_tuner(ctx: Context, runtime: Runtime[Any]) -> tuple[Tuner, Supervisor]:
    s = ctx.settings
    supervisor = Supervisor(runtime, ctx.ledger, ctx.progress, RestartPolicy(max_restarts=s.max_restarts))
    envs, plain = environments(ctx, runtime), spec_for(s)
    limits = Limits(timeout_s=s.timeout_s, memory_mb=s.memory_mb, cpus=s.cpus, pids=s.pids)

    model_check = ModelCheck(runtime, limits, envs.spec)
    report_plots.warm_up()  # pyplot's import, while the trials train: not after the last one

    def check(run: RunRecord, folder: Path) -> dict[str, Any]:
        ctx.progress.info(
            f"   checking that the model of run {run.id} loads in a fresh {runtime.name} process"
        )
        report_plots.draw_ahead(run, ctx.ledger.trials(run.id))  # the report's plots, meanwhile
        return model_check(run, folder)

    tuner = Tuner(
        ctx.ledger,
        ctx.progress,
        envs.fallback(supervisor.execute_with_plain_retry),
        lambda run, number: envs.spec(run, plain(run, number)),
        Budget(s.target, s.max_trials, s.max_minutes, s.parallel),
        ModelPolicy(s.keep_models, s.keep_checkpoints, check, model_check),
        runtime.prestart if runtime.capabilities.starts_ahead else None,
    )
    return tuner, supervisor


def step_train(
    ctx: Context, runs: list[RunRecord], runtime: Runtime[Any], only_baseline: bool, taking_over: bool = False
) -> list[RunRecord]:
    """Train the runs (job 3: trial 0 only). Each run's lock is held first: RunInProgress when another
    process holds one, or, ``taking_over`` (job 6), that run is left to it. SIGINT and SIGTERM stop the
    trials cleanly (jobs/stopping.py)."""
    tuner, supervisor = make_tuner(ctx, runtime)
    done = []
    for run in runs:
        if run.status.is_finished():
            done.append(run)
            continue
        held = ctx.locks.holds(lock_key(run))
        if taking_over and not ctx.free_to_hold(run):
            ctx.progress.info(f"   run {run.id} is being worked on by another process; left to it")
            continue
        ctx.hold_run(run)
        other = ctx.ledger.claim_run(run.id)
        if other is not None:
            ctx.progress.warn(f"run {run.id} is being tuned by process {other['pid']}; leaving it to it")
            done.append(run)
            continue
        if only_baseline:
            ctx.progress.job(3, f"train {run.script} as pushed (run {run.id}, target {run.target:g})")
        else:
            ctx.progress.job(
                4,
                f"tweak and retrain {run.script} (run {run.id}, strategy {run.strategy}, "
                f"target {run.target:g}, up to {run.max_trials} trials)",
            )
        try:
            with trials_stop_on_signals(supervisor):
                tuned = tuner.tune(run, only_baseline=only_baseline)
        finally:
            ctx.ledger.release_run(run.id)
            if not held and taking_over:  # job 6 lives on: the run is free for the next command
                ctx.let_go(run)
        if tuned.status.is_finished() and not ctx.settings.keep_work:
            empty_work(tuned)
        done.append(tuned)
    return done


def lock_key(run: RunRecord) -> str:
    return key(run.source, run.commit, run.script)


def empty_work(run: RunRecord) -> None:
    """The run is over: its trials' work/ folders (a copy of the code and what the script wrote beside
    it) go; the model is in each trial's model/ and in the run's. ``keep_work`` keeps them."""
    for folder in RunLayout(run.dir).attempt_dirs():
        work = TrialLayout(folder).work
        if work.is_dir() and not work.is_symlink():
            shutil.rmtree(work, ignore_errors=True)


def step_monitor(ctx: Context, once: bool = False, interval_s: float = 2.0) -> int:
    """Job 6: carry on the runs of this workspace whose orchestrator died."""
    ctx.progress.job(6, f"monitor {ctx.settings.workspace}")
    made: list[Runtime[Any]] = []

    def runtime() -> Runtime[Any]:
        if not made:
            made.append(choose_runtime(ctx))
        return made[0]

    return watch(
        ctx.ledger,
        ctx.progress,
        runtime,
        lambda orphans: step_train(ctx, orphans, runtime(), only_baseline=False, taking_over=True),
        once=once,
        interval_s=interval_s,
    )


def run_source(
    settings: Settings, source: str, ref: str | None, new_run: bool = False, progress: Progress | None = None
) -> list[RunRecord]:
    ctx = Context.open(settings, progress)
    try:
        return _run_source(ctx, source, ref, new_run)
    finally:
        ctx.locks.release_all()  # a process that runs on (mlops serve) holds no run it has finished


def _run_source(ctx: Context, source: str, ref: str | None, new_run: bool) -> list[RunRecord]:
    Notifier.from_env(
        ctx.settings.environment.variables
    )  # bad mail settings fail now, not after the training
    runtime = choose_runtime(ctx)  # an unusable runtime stops the command before anything is pulled
    checkout = step_pull(ctx, source, ref)
    runs = step_plan(ctx, checkout, runtime.name, new_run=new_run)
    ensure_runtime_ready(runtime, runs, ctx.progress)
    runs = environments(ctx, runtime).prepare(runs)
    runs = step_train(ctx, runs, runtime, only_baseline=False)
    step_report(ctx, runs)
    return [ctx.ledger.run(r.id) for r in runs]


def ensure_runtime_ready(runtime: Runtime[Any], runs: list[RunRecord], progress: Progress) -> None:
    """Let a runtime get ready for the runs' images (the Docker runtime builds what is missing)."""
    images = sorted({r.image for r in runs if r.image and not r.status.is_finished()})
    if runtime.capabilities.images and images:
        runtime.prepare(images, progress.info)
