"""The folders mlops writes, named in one place: a workspace, its runs and their trials.

Every path below is spelled here and nowhere else in ``mlops/``, ``tweak/``, ``monitor/`` and ``jobs/`` (as
KerasTuner's ``Oracle._get_trial_dir`` is the one place that names a trial's folder): a reader or a writer
asks :class:`WorkspaceLayout`, :class:`RunLayout` or :class:`TrialLayout` for the path it wants. The names
of what the harness writes into a trial's folder cross to it, so they are declared in
``mlops_harness/protocol.py`` (the harness never imports mlops) and used from there. ``tests/
test_architecture.py`` fails on a name of this module spelled anywhere else.

::

    <workspace>/
      ledger.db               runs, trials and events
      runs/index.html         the page of all runs
      runs/<run>/             one script at one commit: original.py, inputs.json, best.py, best.diff,
                              best.inputs.yaml, best.<file of values>, report.html, junit.xml, metric.png,
                              model/ (model.json and the model), .model-check/ while the model is checked
        trials/<n>/           one training: source.py, params.json, inputs.json, files/ (what mlops wrote),
                              log.txt, metrics.json, outcome.json, events.jsonl, checkpoints/, model/, work/,
                              outside/, data_rewrites.json (what the harness and the runtime wrote)
        trials/<n>.<label>/   an attempt set aside (``early-stop``: a trial run again without early stop)
      locks/  envs/  cache/  datasets/  checkouts/<repo>/<commit>/  repos/<repo>.git  queue/
      current-runs.json  last-pull.json  index-<branch>

Inside ``envs/`` and ``datasets/`` each store keeps its own layout (``mlops/envs/store.py``,
``mlops/datasets.py``); a trial's disk image beside its folder (``.<n>.disk``) is named by
``mlops/runtime/diskquota.py``, which the keeper runs as a script of the standard library alone.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlops_harness.protocol import (
    ACCURACY_FILE,
    CHECK_FILE,
    CHECKPOINT_DIR,
    EVENTS_FILE,
    GO_FILE,
    INPUTS_FILE,
    LOG_FILE,
    METRICS_FILE,
    MODEL_CARD,
    MODEL_DIR,
    OUTCOME_FILE,
    OUTSIDE_DIR,
    WORK_DIR,
)

# -- a workspace ----------------------------------------------------------------------------------------
LEDGER = "ledger.db"  # also what makes a folder an mlops workspace (mlops/data_policy.py)
RUNS = "runs"
INDEX_PAGE = "index.html"  # in runs/: the page of all runs
SCRIPT_PAGES = "scripts"  # in runs/: the page of each script's commits (mlops/script_page.py)
LOCKS = "locks"  # a lock file per commit and script (jobs/runlock.py)
ENVS = "envs"  # the runs' environments (and, in the machine's cache, the generations' own)
CACHE = "cache"  # each repository's data sets and downloads, shared by its trials
DATASETS = "datasets"  # the imported data sets (mlops datasets import)
CHECKOUTS = "checkouts"  # each pulled commit's tree
REPOS = "repos"  # a bare mirror per remote repository
QUEUE = "queue"  # the pushes mlops serve and mlops watch have yet to train
QUEUE_SEEN = "seen.json"  # in queue/: the deliveries already taken
CURRENT_RUNS = "current-runs.json"  # the runs job 2 planned last (jobs 3 to 5 work on them)
LAST_PULL = "last-pull.json"  # what job 1 pulled last (job 2 plans from it)
MIRROR_SUFFIX = ".git"

# -- a run ----------------------------------------------------------------------------------------------
TRIALS = "trials"
ORIGINAL = "original.py"  # the script as pushed
BEST_PREFIX = "best."  # best.py, best.diff, best.inputs.yaml and best.<file of values>
BEST_SOURCE = BEST_PREFIX + "py"
BEST_DIFF = BEST_PREFIX + "diff"
BEST_INPUTS = BEST_PREFIX + "inputs.yaml"
REPORT = "report.html"
JUNIT = "junit.xml"
PLOT = "metric.png"
CHECK_SCRATCH = ".model-check"  # while the model is checked (its log, check.json), then removed

# -- a trial: what mlops writes there (what the harness writes: mlops_harness/protocol.py) -------------
SOURCE = "source.py"
PARAMS = "params.json"
FILES = "files"  # the trial's own copies of the files of values it reads (tune_file:)
REWRITES = "data_rewrites.json"  # how the source's data: paths were rewritten for the runtime
DATA_COPY_SUFFIX = ".data.py"  # the source with those paths rewritten, beside it
TRIAL_INPUTS = (SOURCE, PARAMS, INPUTS_FILE, FILES)  # what mlops writes before a trial starts


@dataclass(frozen=True)
class TrialLayout:
    """One trial's folder, ``runs/<run>/trials/<n>``."""

    dir: Path

    @property
    def source(self) -> Path:
        return self.dir / SOURCE

    @property
    def params(self) -> Path:
        return self.dir / PARAMS

    @property
    def inputs(self) -> Path:
        return self.dir / INPUTS_FILE

    @property
    def files(self) -> Path:
        return self.dir / FILES

    def file_copy(self, number: int, source: str) -> Path:
        """The trial's copy of the ``number``-th file of values, the repository's ``source`` (posix form)."""
        return self.files / str(number) / posixpath.basename(source)

    @property
    def log(self) -> Path:
        return self.dir / LOG_FILE

    @property
    def metrics(self) -> Path:
        return self.dir / METRICS_FILE

    @property
    def accuracy(self) -> Path:
        return self.dir / ACCURACY_FILE

    @property
    def outcome(self) -> Path:
        return self.dir / OUTCOME_FILE

    @property
    def events(self) -> Path:
        return self.dir / EVENTS_FILE

    @property
    def check(self) -> Path:
        return self.dir / CHECK_FILE

    @property
    def go(self) -> Path:
        return self.dir / GO_FILE

    @property
    def checkpoints(self) -> Path:
        return self.dir / CHECKPOINT_DIR

    @property
    def model(self) -> Path:
        return self.dir / MODEL_DIR

    @property
    def work(self) -> Path:
        return self.dir / WORK_DIR

    @property
    def outside(self) -> Path:
        return self.dir / OUTSIDE_DIR

    @property
    def rewrites(self) -> Path:
        return self.dir / REWRITES

    def set_aside(self, label: str) -> Path:
        """Where an attempt of this trial is set aside: ``trials/<n>.<label>``."""
        return self.dir.with_name(f"{self.dir.name}.{label}")


def data_copy(source_file: Path) -> Path:
    """The copy of a trial's source with its ``data:`` paths rewritten, beside it."""
    return source_file.with_name(source_file.name.removesuffix(".py") + DATA_COPY_SUFFIX)


@dataclass(frozen=True)
class RunLayout:
    """One run's folder, ``runs/<run>``: what it was given, its trials, and what it ends with."""

    dir: Path

    @property
    def trials(self) -> Path:
        return self.dir / TRIALS

    def trial(self, number: int) -> TrialLayout:
        return TrialLayout(self.trials / str(number))

    def attempt_dirs(self) -> list[Path]:
        """The folders of the run's trials and of their attempts set aside, in the order of their names."""
        return sorted(self.trials.glob("[0-9]*"))

    @property
    def original(self) -> Path:
        return self.dir / ORIGINAL

    @property
    def inputs(self) -> Path:
        """The answers to the script's input() prompts as pushed (mlops.yaml's ``inputs:``)."""
        return self.dir / INPUTS_FILE

    @property
    def best_source(self) -> Path:
        return self.dir / BEST_SOURCE

    @property
    def best_diff(self) -> Path:
        return self.dir / BEST_DIFF

    @property
    def best_inputs(self) -> Path:
        return self.dir / BEST_INPUTS

    def best_copy(self, name: str) -> Path:
        """The best trial's copy of a file of values named ``name``: ``best.<name>``."""
        return self.dir / (BEST_PREFIX + name)

    def best_kept(self) -> list[Path]:
        """The answers and files of values kept beside best.py (best.inputs.yaml, best.<file>)."""
        return sorted(p for p in self.dir.glob(BEST_PREFIX + "*") if p.name not in (BEST_SOURCE, BEST_DIFF))

    @property
    def report(self) -> Path:
        return self.dir / REPORT

    @property
    def junit(self) -> Path:
        return self.dir / JUNIT

    @property
    def plot(self) -> Path:
        return self.dir / PLOT

    @property
    def model(self) -> Path:
        """The run's model: a copy of its best trial's."""
        return self.dir / MODEL_DIR

    @property
    def model_card(self) -> Path:
        return self.model / MODEL_CARD

    @property
    def check_scratch(self) -> Path:
        return self.dir / CHECK_SCRATCH

    def published(self) -> list[Path]:
        """What a finished run offers besides its model, in the order people read it."""
        return [self.report, self.junit, self.best_source, self.best_diff]


@dataclass(frozen=True)
class WorkspaceLayout:
    """A workspace (``--workspace``, ``.mlops`` by default): the ledger, the runs, and what they share."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    def run(self, run_id: str) -> RunLayout:
        return RunLayout(self.runs / run_id)

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.runs.glob("*") if p.is_dir())

    def trial_entries(self, pattern: str = "*") -> Iterator[Path]:
        """What the trials folders of every run hold that matches ``pattern`` (folders, disk images)."""
        return self.runs.glob(f"*/{TRIALS}/{pattern}")

    @property
    def locks(self) -> Path:
        return self.root / LOCKS

    @property
    def envs(self) -> Path:
        return self.root / ENVS

    @property
    def cache(self) -> Path:
        return self.root / CACHE

    @property
    def datasets(self) -> Path:
        return self.root / DATASETS

    @property
    def checkouts(self) -> Path:
        return self.root / CHECKOUTS

    def checkout(self, repo: str, commit: str) -> Path:
        """The tree of ``commit`` of the repository whose mirror is named ``repo``."""
        return self.checkouts / repo / commit

    @property
    def repos(self) -> Path:
        return self.root / REPOS

    def mirror(self, key: str) -> Path:
        """The bare mirror of the remote repository ``key`` names."""
        return self.repos / (key + MIRROR_SUFFIX)

    def git_index(self, branch: str) -> Path:
        """The index git builds a commit of ``branch`` in (mlops/best-<run>: committing the best source)."""
        return self.root / f"index-{branch.replace('/', '-')}"

    @property
    def queue(self) -> Path:
        return self.root / QUEUE

    @property
    def queue_seen(self) -> Path:
        return self.queue / QUEUE_SEEN

    @property
    def current_runs(self) -> Path:
        return self.root / CURRENT_RUNS

    @property
    def last_pull(self) -> Path:
        return self.root / LAST_PULL


def machine_envs(machine_cache: Path) -> Path:
    """The environments built once per machine (the PyTorch and legacy Keras generations)."""
    return machine_cache / ENVS


def repository_caches(workspace: Path | None, trial_dir: Path) -> Path:
    """Where each repository's cache folder is: the workspace's, else (a trial outside any workspace, as
    in a test) beside its folder."""
    return WorkspaceLayout(workspace).cache if workspace else trial_dir.resolve().parent / f".{CACHE}"
