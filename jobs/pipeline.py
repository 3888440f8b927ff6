"""The chain of jobs, composed: pull -> classify and plan -> train -> tweak and retrain -> notify.

``mlops run`` calls :func:`run_source`, which runs every step in one process. The Jenkins entry points
(``jobs/job1_pull.py`` ... ``job6_monitor.py``) call the same step functions one per process, passing
what they made through the ledger.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.environments import Environments
from mlops import images
from mlops.classify import Classification, candidate_files, classify_file, find_entry_points
from mlops.config import STOP_MARGIN, Settings
from mlops.domain import Kind, RunStatus, RuntimeName, trial_seed
from mlops.errors import ConfigError, LedgerError, RuntimeUnavailable, SourceError
from mlops.index_page import write_index
from mlops.ledger import Ledger, RunRecord
from mlops.load_check import check_model
from mlops.mlflow_log import log_run_once
from mlops.model_store import ModelPolicy, check_summary, read_card
from mlops.notebook import notebook_to_script
from mlops.notify import Notifier, notify_run
from mlops.progress import Progress
from mlops.project import mapped_data, read_project
from mlops.pull import Checkout, publish_best, pull
from mlops.report import write_junit, write_report
from mlops.runtime.base import Limits, Runtime, TrialSpec
from mlops.runtime.local import LocalRuntime
from mlops_harness.protocol import (
    ENV_CHECKPOINT_EVERY_BATCHES,
    ENV_CLUSTER_METRIC,
    ENV_IMPORT_WORKSPACE,
    ENV_PATIENCE,
    ENV_SEED,
    ENV_STOP_AT,
    INPUTS_FILE,
    write_atomic,
)
from monitor.supervisor import RestartPolicy, Supervisor
from monitor.watch import watch
from tweak.loop import ORIGINAL, SOURCE, Budget, Tuner, trial_dir

LAST_PULL = "last-pull.json"
CURRENT_RUNS = "current-runs.json"


@dataclass
class Context:
    settings: Settings
    ledger: Ledger
    progress: Progress

    @classmethod
    def open(cls, settings: Settings, progress: Progress | None = None) -> Context:
        return cls(settings, Ledger(settings.ledger_path), progress or Progress(verbose=settings.verbose))


# -- job 1 ----------------------------------------------------------------------------------------------


def step_pull(ctx: Context, source: str, ref: str | None) -> Checkout:
    ctx.progress.job(1, f"pull {source}" + (f" at {ref}" if ref else ""))
    checkout = pull(source, ref, ctx.settings.workspace, ctx.ledger)
    again = " (already in the workspace)" if checkout.reused else ""
    ctx.progress.info(f"   commit {checkout.commit[:12]} by {checkout.author}: {checkout.message}{again}")
    if checkout.dirty:
        ctx.progress.warn(f"{source} has uncommitted changes; only what is committed is trained")
    write_atomic(
        ctx.settings.workspace / LAST_PULL,
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
    path = settings.workspace / LAST_PULL
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
        cluster = RayRuntime.connect(ctx.settings.workspace, ctx.settings.ray_address, ctx.settings.storage)
        ctx.progress.info(f"   runtime: ray ({cluster.describe()})")
        return cluster
    if wanted in (RuntimeName.DOCKER, RuntimeName.AUTO):
        from mlops.runtime import docker as docker_runtime

        if wanted is RuntimeName.DOCKER or docker_runtime.engine_available():
            runtime = docker_runtime.DockerRuntime.from_env(workspace=ctx.settings.workspace)
            ctx.progress.info(f"   runtime: docker ({runtime.describe()})")
            return runtime
        why = " (no Docker engine answers; --runtime docker to insist)"
    else:
        why = ""
    local = LocalRuntime(workspace=ctx.settings.workspace, sandboxed=not ctx.settings.unsandboxed)
    if local.sandboxed:
        ctx.progress.info(f"   runtime: {local.describe()}{why}")
    else:
        ctx.progress.warn(f"runtime: {local.describe()} (--unsandboxed)")
    return local


def step_plan(ctx: Context, checkout: Checkout, runtime_name: str, new_run: bool = False) -> list[RunRecord]:
    """Classify the pushed code and create (or find, to resume) one run per training entry point."""
    ctx.progress.job(2, "classify")
    code = checkout.code_dir
    mapped_data(code, ctx.settings.data, ctx.settings.workspace)  # a bad data: entry stops before any trial
    if checkout.entry:
        entries = [Path(checkout.entry).relative_to(checkout.subdir or ".")]
    else:
        entries = find_entry_points(code)
        # A file that does not parse cannot show that it trains; it is most likely the model, broken.
        broken = [p.relative_to(code) for p in candidate_files(code) if classify_file(p, root=code).error]
        entries += [rel for rel in broken if rel not in entries]
    if not entries:
        if not candidate_files(code):
            raise SourceError(f"no Python file or notebook in {checkout.source} at {checkout.commit[:12]}")
        raise SourceError(
            f"no file in {checkout.source} at {checkout.commit[:12]} trains a model "
            "(name the entry points in mlops.yaml)"
        )
    runs: list[RunRecord] = []
    errors: list[str] = []
    for entry in entries:
        result = classify_file(code / entry, root=code)
        script = entry.as_posix()
        if result.error:
            line = f"{script}:{result.error_line}" if result.error_line else script
            ctx.progress.info(f"   {line}: {result.error}")
            errors.append(f"{line}: {result.error}")
        else:
            why = "; ".join(f"line {r.line}: {r.text}" for r in result.reasons[:3])
            ctx.progress.info(
                f"   {script}: {result.kind} ({result.family}, {result.framework}, {result.api}) "
                f"-> image {result.image}; {why}"
            )
        runs.append(_find_or_create_run(ctx, checkout, script, result, runtime_name, new_run))
    write_atomic(ctx.settings.workspace / CURRENT_RUNS, json.dumps([r.id for r in runs]))
    if errors and all(r.status is RunStatus.FAILED for r in runs):
        raise SourceError("; ".join(errors))
    return runs


def current_runs(ctx: Context) -> list[RunRecord]:
    """The runs job 2 planned last (the Jenkins jobs 3 to 5 work on them)."""
    path = ctx.settings.workspace / CURRENT_RUNS
    if not path.exists():
        raise LedgerError(f"no runs planned in {ctx.settings.workspace} (run job 2 first)")
    return [ctx.ledger.run(run_id) for run_id in json.loads(path.read_text())]


def _find_or_create_run(
    ctx: Context, checkout: Checkout, script: str, result: Classification, runtime_name: str, new_run: bool
) -> RunRecord:
    s = ctx.settings
    identity = s.identity()
    if not new_run:
        for run in reversed(ctx.ledger.find_runs(checkout.source, checkout.commit, script)):
            earlier = {k: run.settings.get(k) for k in identity}
            if run.status is RunStatus.RUNNING:
                if earlier != identity:
                    diff = ", ".join(
                        f"{k} {earlier[k]} -> {identity[k]}" for k in identity if earlier[k] != identity[k]
                    )
                    raise LedgerError(
                        f"run {run.id} ({script} at {checkout.commit[:12]}) is unfinished and was started with "
                        f"other settings ({diff}); run with the same settings to resume it, or --new-run"
                    )
                ctx.progress.info(f"   resuming run {run.id}")
                return run
            if earlier == identity:
                ctx.progress.info(
                    f"   {script} at {checkout.commit[:12]} was already tuned: run {run.id} "
                    f"({run.status.value}); --new-run to train it again"
                )
                return run
    kind = result.kind.value if result.kind else None
    name = Path(script).stem.replace(" ", "_")
    run = ctx.ledger.create_run(
        name=name,
        source=checkout.source,
        ref=checkout.ref,
        commit=checkout.commit,
        author=checkout.author,
        code_dir=checkout.code_dir,
        script=script,
        classification=result.to_json(),
        runtime=runtime_name,
        metric=s.cluster_metric.value if kind == Kind.KMEANS.value else "accuracy",
        target=s.target,
        strategy=s.strategy.value,
        max_trials=s.max_trials,
        settings=s.to_json(),
        runs_dir=s.runs_dir,
    )
    if result.error:
        where = f"{script}:{result.error_line}" if result.error_line else script
        ctx.ledger.finish_run(run.id, RunStatus.FAILED, f"{where}: {result.error}")
        return ctx.ledger.run(run.id)
    text = (checkout.code_dir / script).read_text(encoding="utf-8", errors="replace")
    if script.endswith(".ipynb"):
        text = notebook_to_script(text)
    write_atomic(run.dir / ORIGINAL, text)
    answers = read_project(checkout.code_dir).inputs
    if answers:
        write_atomic(run.dir / INPUTS_FILE, json.dumps({"answers": [str(a) for a in answers]}))
    return run


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
    passed = {name: os.environ[name] for name in settings.trial_env if name in os.environ}

    def make(run: RunRecord, number: int) -> TrialSpec:
        folder = trial_dir(run, number)
        env = {
            **read_project(run.code_dir).env,  # the pushed repository's own constants (mlops.yaml)
            **passed,
            ENV_SEED: str(trial_seed(int(run.settings.get("seed", 0)), number)),
            ENV_CLUSTER_METRIC: str(run.settings.get("cluster_metric", "silhouette")),
            ENV_PATIENCE: str(settings.patience),
        }
        if settings.checkpoint_every_batches:
            env[ENV_CHECKPOINT_EVERY_BATCHES] = str(settings.checkpoint_every_batches)
        if settings.workspace.resolve() != Settings().workspace.resolve():  # what `mlops datasets` reads
            env[ENV_IMPORT_WORKSPACE] = str(settings.workspace)
        if settings.stop_at_target:
            env[ENV_STOP_AT] = str(round(float(run.settings.get("target", settings.target)) + STOP_MARGIN, 6))
        return TrialSpec(
            run_id=run.id,
            trial=number,
            code_dir=run.code_dir,
            script=run.script,
            source_file=folder / SOURCE,
            trial_dir=folder,
            image=images.for_gpus(run.image or "", settings.gpus),
            gpus=settings.gpus,
            limits=Limits(
                timeout_s=settings.timeout_s, memory_mb=settings.memory_mb, cpus=trial_cpus(settings, number)
            ),
            network=settings.network,
            env=env,
            repository=run.source,
            data=mapped_data(run.code_dir, settings.data, settings.workspace),
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
    )


def make_tuner(ctx: Context, runtime: Runtime[Any]) -> Tuner:
    s = ctx.settings
    supervisor = Supervisor(runtime, ctx.ledger, ctx.progress, RestartPolicy(max_restarts=s.max_restarts))
    envs, plain = environments(ctx, runtime), spec_for(s)
    limits = Limits(timeout_s=s.timeout_s, memory_mb=s.memory_mb, cpus=s.cpus)

    def check(run: RunRecord, folder: Path) -> dict[str, Any]:
        ctx.progress.info(
            f"   checking that the model of run {run.id} loads in a fresh {runtime.name} process"
        )
        return check_model(runtime, run, folder, limits, envs.spec)

    return Tuner(
        ctx.ledger,
        ctx.progress,
        envs.fallback(supervisor.execute),
        lambda run, number: envs.spec(run, plain(run, number)),
        Budget(s.target, s.max_trials, s.max_minutes, s.parallel),
        ModelPolicy(s.keep_models, s.keep_checkpoints, check),
        runtime.prestart if isinstance(runtime, LocalRuntime) else None,
    )


def step_train(
    ctx: Context, runs: list[RunRecord], runtime: Runtime[Any], only_baseline: bool
) -> list[RunRecord]:
    tuner = make_tuner(ctx, runtime)
    done = []
    for run in runs:
        if run.status.is_finished():
            done.append(run)
            continue
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
            done.append(tuner.tune(run, only_baseline=only_baseline))
        finally:
            ctx.ledger.release_run(run.id)
    return done


# -- job 5 ----------------------------------------------------------------------------------------------


def leaderboard(ctx: Context, run: RunRecord) -> None:
    rows = []
    for t in ctx.ledger.trials(run.id):
        metric = f"{t.metric:.4f}" if t.metric is not None else "-"
        changes = "; ".join(t.changes) if t.changes else "as pushed"
        duration = f"{t.duration_s:.1f}s" if t.duration_s is not None else "-"
        mark = "*" if t.number == run.best_trial else ""
        rows.append([f"{t.number}{mark}", t.status.value, metric, duration, t.restarts, changes])
    ctx.progress.table(
        f"run {run.id}: {run.script} ({run.kind}) - {run.status.value}: {run.reason}",
        ["trial", "status", run.metric or "metric", "time", "restarts", "changes"],
        rows,
    )


def step_report(ctx: Context, runs: list[RunRecord], notify: bool = True) -> None:
    ctx.progress.job(5, "results")
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    notifier = Notifier.from_env(os.environ) if notify else None
    for run in runs:
        run = ctx.ledger.run(run.id)
        leaderboard(ctx, run)
        if run.best_trial is not None and (run.dir / "best.diff").exists():
            ctx.progress.info(f"   best source: {run.dir / 'best.py'} (diff: {run.dir / 'best.diff'})")
            # The answers to its prompts and the files of values it read (best.inputs.yaml, best.input.txt).
            kept = sorted(p.name for p in run.dir.glob("best.*") if p.name not in ("best.py", "best.diff"))
            if kept:
                ctx.progress.info(f"   best inputs: {', '.join(kept)} (beside best.py)")
        model_line(ctx.progress, run, read_card(run))
        report, junit = write_report(ctx.ledger, run.id), write_junit(ctx.ledger, run.id)
        ctx.progress.info(f"   report: {report} (JUnit: {junit.name})")
        lines: list[str | None] = []
        if notifier is not None:
            lines += [f"   {line}" for line in notify_run(ctx.ledger, run, notifier)]
        if tracking_uri:
            lines.append(log_run_once(ctx.ledger, run, tracking_uri))
        if ctx.settings.commit_best:
            lines.append(publish_best(ctx.ledger, run, ctx.settings.workspace))
        for line in lines:
            if line is None:
                continue
            if line.startswith("warning: "):
                ctx.progress.warn(line.removeprefix("warning: "))
            else:
                ctx.progress.info(line)
    # The page of all runs is a view of the ledger: when it cannot be written, the next run (or
    # `mlops history --html`) writes it; the run's own results are not lost for it.
    try:
        ctx.progress.info(f"   all runs: {write_index(ctx.ledger, ctx.settings.runs_dir)}")
    except OSError as e:
        ctx.progress.warn(f"could not write the page of all runs: {e}")


def model_line(progress: Progress, run: RunRecord, card: dict[str, Any] | None) -> None:
    """Where the run's model is and whether it loaded; or why there is none."""
    if card is None:
        return
    if not card.get("file"):
        progress.warn(f"run {run.id}: no model: {card.get('error')}")
        return
    passed, said = check_summary(card)
    path = run.dir / "model" / str(card["file"])
    if passed:
        progress.info(f"   model: {path} ({said}; card: model.json)")
    else:
        progress.warn(f"run {run.id}: model {path} {said}")


def send_notifications(ctx: Context, runs: list[RunRecord]) -> None:
    """Job 5 --notify-only: the notifications of the runs, each sent once."""
    notifier = Notifier.from_env(os.environ)
    for run in runs:
        for line in notify_run(ctx.ledger, ctx.ledger.run(run.id), notifier):
            ctx.progress.info(f"   {line}")


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
        lambda orphans: step_train(ctx, orphans, runtime(), only_baseline=False),
        once=once,
        interval_s=interval_s,
    )


def run_source(
    settings: Settings, source: str, ref: str | None, new_run: bool = False, progress: Progress | None = None
) -> list[RunRecord]:
    ctx = Context.open(settings, progress)
    Notifier.from_env(os.environ)  # bad mail settings fail now, not after the training
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
    prepare = getattr(runtime, "prepare", None)
    images = sorted({r.image for r in runs if r.image and not r.status.is_finished()})
    if prepare is not None and images:
        prepare(images, progress)
