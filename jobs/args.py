"""What the ``mlops`` command and the six Jenkins entry points share: their flags, the settings they make,
and the error boundary (one clear line and the error's exit code, never a traceback).

Settings are read once, here, from the file, the environment and the flags (the last one wins), and
checked before any work is done: a bad value exits 2 before anything is pulled.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import select
import signal
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from jobs.stopping import on_signals_raise
from mlops.config import Settings, load_settings
from mlops.domain import ClusterMetric, KeepModels, RuntimeName, StrategyName
from mlops.errors import Interrupted, MlopsError
from mlops.progress import terminal_safe


class Parser(argparse.ArgumentParser):
    """Options before or after the positionals, as people type them: ``mlops datasets import --workspace W
    FILE``. Plain argparse fills the positionals at their first run (``import`` and zero files), so a FILE
    after an option was 'unrecognized'; intermixed parsing takes the options out first. The top parser,
    whose one positional is the command, parses plainly and hands the rest to the command's parser."""

    intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.intermixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self.intermixing = True  # intermixed parsing calls this again for each of its two passes
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self.intermixing = False


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and the example's lines as written; the flags' help wraps as usual."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def example(command: str) -> str:
    """The epilog that ends a command's help: one command line to copy."""
    return f"example:\n  {command}"


def version() -> str:
    """mlops's version, from the installed package's metadata (or pyproject.toml in a bare checkout)."""
    try:
        return importlib.metadata.version("mlops")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


def _choices(
    kind: type[StrategyName] | type[RuntimeName] | type[ClusterMetric] | type[KeepModels],
) -> list[str]:
    return [member.value for member in kind]


def add_common(parser: argparse.ArgumentParser) -> None:
    """Where the workspace and the settings file are."""
    parser.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="the folder of the ledger, checkouts and runs (default .mlops)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML settings file, read before MLOPS_* variables and flags (default ./mlops.toml)",
    )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The settings of a run: what to reach, how to search, where and with what limits trials run."""
    for group in (_search_flags, _limit_flags, _environment_flags, _training_flags, _kept_flags):
        group(parser.add_argument)


def _search_flags(flag: Callable[..., object]) -> None:
    """What to reach and how to search, where trials run."""
    flag(
        "--target",
        type=float,
        metavar="FRACTION",
        help="the metric to reach; tuning stops there (default 0.8)",
    )
    flag(
        "--max-trials",
        dest="max_trials",
        type=int,
        metavar="N",
        help="trials per run, trial 0 included (default 5)",
    )
    flag(
        "--max-minutes",
        dest="max_minutes",
        type=float,
        metavar="MINUTES",
        help="time budget per run; no trial starts after it (default: none)",
    )
    flag(
        "--runtime",
        choices=_choices(RuntimeName),
        help="where trials run: local processes, docker containers, a ray cluster (--ray-address), or auto: "
        "Docker if an engine answers (default auto)",
    )
    flag(
        "--unsandboxed",
        action="store_true",
        default=None,
        help="with --runtime local: run trials as plain processes, without the bubblewrap sandbox "
        "(default: sandboxed)",
    )
    flag(
        "--strategy",
        choices=_choices(StrategyName),
        help="how the next trial is proposed: tpe (an informed guess, then Optuna's TPE) or ladder "
        "(a fixed order) (default tpe)",
    )
    flag("--parallel", type=int, metavar="N", help="trials trained at once (default 1)")
    flag(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        default=None,
        help="search from scratch, even when an earlier commit of the script was tuned (default: start "
        "from its best changes and trials)",
    )


def _limit_flags(flag: Callable[..., object]) -> None:
    """The limits of each trial, and the Ray cluster."""
    flag(
        "--timeout",
        dest="timeout_s",
        type=float,
        metavar="SECONDS",
        help="how long a trial may train before it is stopped (default 1800)",
    )
    flag("--memory", dest="memory_mb", type=int, metavar="MB", help="memory limit per trial (default 4096)")
    flag("--cpus", type=float, metavar="N", help="CPU limit per trial (default: no limit)")
    flag(
        "--disk",
        dest="disk_mb",
        type=int,
        metavar="MB",
        help="what a trial may write: its folder, work/ and /tmp, in MB (default 8192)",
    )
    flag(
        "--disk-files",
        dest="disk_files",
        type=int,
        metavar="N",
        help="files and folders a trial may write (default 100000)",
    )
    flag("--pids", type=int, metavar="N", help="processes and threads per trial (default 512)")
    flag("--gpus", type=int, metavar="N", help="GPUs per trial, on the Docker and Ray runtimes (default 0)")
    flag(
        "--ray-address",
        dest="ray_address",
        metavar="HOST:PORT",
        help="the Ray cluster that --runtime ray sends trials to (default: none)",
    )
    flag(
        "--storage",
        metavar="URI",
        help="where Ray trials keep their checkpoints, for every node: a shared folder or a pyarrow.fs URI "
        "such as s3://bucket/prefix (default: the trial folder only)",
    )


def _environment_flags(flag: Callable[..., object]) -> None:
    """The network and the environment of the trials, the seed, the clustering metric."""
    flag("--network", action="store_true", default=None, help="give trials the network (the default)")
    flag(
        "--no-network",
        dest="network",
        action="store_false",
        help="trials get no network (default: they have it)",
    )
    flag(
        "--no-install",
        dest="install",
        action="store_false",
        default=None,
        help="install nothing the code asks for (requirements, imports): run on the image or venv as it is "
        "(default: install)",
    )
    flag(
        "--seed", type=int, metavar="N", help="base seed; the same seed proposes the same trials (default 0)"
    )
    flag(
        "--cluster-metric",
        dest="cluster_metric",
        choices=_choices(ClusterMetric),
        help="the metric of a KMeans run: silhouette, or ari (the adjusted Rand index, when the data has "
        "labels) (default silhouette)",
    )


def _training_flags(flag: Callable[..., object]) -> None:
    """How a training is watched: checkpoints, early stops, restarts."""
    flag(
        "--checkpoint-every-batches",
        dest="checkpoint_every_batches",
        type=int,
        metavar="N",
        help="also checkpoint a Keras training every N batches (default: after each epoch only)",
    )
    flag(
        "--patience",
        type=int,
        metavar="EPOCHS",
        help="stop a Keras training after this many epochs without a better validation accuracy (else "
        "accuracy, else loss), with the best epoch's weights; 0: never (default 3)",
    )
    flag(
        "--stop-at-target",
        dest="stop_at_target",
        action="store_true",
        default=None,
        help="stop a Keras training once its validation accuracy is 0.02 past the target (the default)",
    )
    flag(
        "--no-stop-at-target",
        dest="stop_at_target",
        action="store_false",
        help="train every epoch asked for, past the target too (default: stop there)",
    )
    flag(
        "--max-restarts",
        dest="max_restarts",
        type=int,
        metavar="N",
        help="restarts of a training that dies, each from its last checkpoint (default 3)",
    )


def _kept_flags(flag: Callable[..., object]) -> None:
    """What is kept once the run ends, and what is shown."""
    flag(
        "--keep-models",
        dest="keep_models",
        choices=_choices(KeepModels),
        help="which trials keep their trained model once the run ends: best or all (default best)",
    )
    flag(
        "--keep-checkpoints",
        dest="keep_checkpoints",
        action="store_true",
        default=None,
        help="keep a finished trial's checkpoints after its model is saved (default: removed)",
    )
    flag(
        "--keep-work",
        dest="keep_work",
        action="store_true",
        default=None,
        help="keep the trials' work/ folders (what the script wrote there) once the run ends "
        "(default: emptied; the model is kept in model/)",
    )
    flag(
        "-v",
        "--verbose",
        action="store_true",
        default=None,
        help="show every line the training prints (default: mlops's own lines only)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: the file, then MLOPS_* variables, then the flags given; checked (ConfigError, exit 2)."""
    flags = {k: v for k, v in vars(args).items() if v is not None}
    return load_settings(flags, config_file=getattr(args, "config", None))


def guarded(body: Callable[[], int]) -> int:
    """Run ``body``; our errors become one line on stderr and their exit code; SIGINT and SIGTERM stop it
    (what trains is stopped and recorded first, see jobs/stopping.py) with 128 + the signal's number; a
    reader of our output that left (``mlops history --json | head -1``) a quiet end, as SIGPIPE ends others."""
    on_signals_raise()
    try:
        code = body()
        sys.stdout.flush()  # what is still buffered fails here, inside the boundary, not at exit
        return code
    except BrokenPipeError:
        if not reader_left(sys.stdout):
            raise  # another pipe than our output: a fault, shown as one
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush has nowhere to fail
        return 128 + signal.SIGPIPE
    except MlopsError as e:
        print(f"mlops: error: {terminal_safe(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        print(
            f"mlops: stopped by {signal.Signals(signum).name}; the ledger keeps what was done (a stopped "
            "trial goes on from its checkpoint): run the same command again to resume",
            file=sys.stderr,
        )
        return 128 + signum


def reader_left(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reader has gone (poll says POLLERR on its writing end)."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
    except (OSError, ValueError):  # not a file descriptor (a test's StringIO), or closed
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))


def job_parser(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None, command: str
) -> argparse.ArgumentParser:
    """A Jenkins entry point's flags: its own, then the run flags; its help ends with ``command``."""
    parser = Parser(description=description, epilog=example(command), formatter_class=HelpFormatter)
    if extra:
        extra(parser)
    add_common(parser)
    add_run_flags(parser)
    return parser


def job_main(
    parser: argparse.ArgumentParser,
    body: Callable[[Settings, argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """The ``main`` of a Jenkins entry point: its flags, settings, the error boundary."""
    args = parser.parse_args(argv)
    return guarded(lambda: body(settings_from(args), args))
