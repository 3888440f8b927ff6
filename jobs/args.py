"""What the ``mlops`` command and the six Jenkins entry points share: their flags, the settings they make,
and the error boundary (one clear line and the error's exit code, never a traceback).

Settings are read once, here, from the file, the environment and the flags (the last one wins), and
checked before any work is done: a bad value exits 2 before anything is pulled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mlops.config import Settings, load_settings
from mlops.domain import ClusterMetric, KeepModels, RuntimeName, StrategyName
from mlops.errors import MlopsError


def _choices(
    kind: type[StrategyName] | type[RuntimeName] | type[ClusterMetric] | type[KeepModels],
) -> list[str]:
    return [member.value for member in kind]


def add_common(parser: argparse.ArgumentParser) -> None:
    """Where the workspace and the settings file are."""
    parser.add_argument("--workspace", type=Path, help="where the ledger and runs live (default .mlops)")
    parser.add_argument("--config", type=Path, help="a TOML settings file (default ./mlops.toml)")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The settings of a run: what to reach, how to search, where and with what limits trials run."""
    parser.add_argument("--target", type=float, help="the metric to reach, a fraction (default 0.8)")
    parser.add_argument(
        "--max-trials", dest="max_trials", type=int, help="trials per run, trial 0 included (default 5)"
    )
    parser.add_argument(
        "--max-minutes", dest="max_minutes", type=float, help="wall-time budget per run (default none)"
    )
    parser.add_argument(
        "--runtime",
        choices=_choices(RuntimeName),
        help="where trials run (default auto: Docker if it answers)",
    )
    parser.add_argument(
        "--strategy", choices=_choices(StrategyName), help="how trials are proposed (default tpe)"
    )
    parser.add_argument("--parallel", type=int, help="trials at once (default 1)")
    parser.add_argument(
        "--timeout", dest="timeout_s", type=float, help="seconds per trial launch (default 1800)"
    )
    parser.add_argument("--memory", dest="memory_mb", type=int, help="MB per trial (default 4096)")
    parser.add_argument("--cpus", type=float, help="CPUs per trial (default: no limit)")
    parser.add_argument(
        "--network",
        dest="network",
        action="store_true",
        default=None,
        help="give trials the network (default)",
    )
    parser.add_argument("--no-network", dest="network", action="store_false", help="trials get no network")
    parser.add_argument(
        "--seed", type=int, help="base seed; the same seed proposes the same trials (default 0)"
    )
    parser.add_argument(
        "--cluster-metric",
        dest="cluster_metric",
        choices=_choices(ClusterMetric),
        help="the metric of a clustering (default silhouette)",
    )
    parser.add_argument(
        "--checkpoint-every-batches",
        dest="checkpoint_every_batches",
        type=int,
        help="also checkpoint every N batches (default: every epoch)",
    )
    parser.add_argument(
        "--max-restarts", dest="max_restarts", type=int, help="restarts of a dead trial (default 3)"
    )
    parser.add_argument(
        "--keep-models",
        dest="keep_models",
        choices=_choices(KeepModels),
        help="which trials keep their model once the run ends (default best)",
    )
    parser.add_argument(
        "--keep-checkpoints",
        dest="keep_checkpoints",
        action="store_true",
        default=None,
        help="keep a finished trial's checkpoints after its model is saved",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=None, help="show the training's own output"
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: the file, then MLOPS_* variables, then the flags given; checked (ConfigError, exit 2)."""
    flags = {k: v for k, v in vars(args).items() if v is not None}
    return load_settings(flags, config_file=getattr(args, "config", None))


def guarded(body: Callable[[], int]) -> int:
    """Run ``body``; our errors become one line on stderr and their exit code, an interrupt 130."""
    try:
        return body()
    except MlopsError as e:
        print(f"mlops: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(
            "mlops: interrupted; the ledger keeps what was done: run the same command again to resume",
            file=sys.stderr,
        )
        return 130


def job_main(
    description: str,
    body: Callable[[Settings, argparse.Namespace], int],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """The ``main`` of a Jenkins entry point: its own flags, the run flags, settings, the error boundary."""
    parser = argparse.ArgumentParser(description=description)
    if extra:
        extra(parser)
    add_common(parser)
    add_run_flags(parser)
    args = parser.parse_args(argv)
    return guarded(lambda: body(settings_from(args), args))
