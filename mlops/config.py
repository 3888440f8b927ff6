"""Settings, read once: a file, then the environment, then command-line flags; the last one wins.

The resulting :class:`Settings` is passed down as an argument; nothing reads the environment later. Every
value is checked here, so a bad one stops the command (exit 2) before any work is done.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from mlops.domain import ClusterMetric, KeepModels, RunSettings, RuntimeName, StrategyName
from mlops.envsafe import Redactor, check_names, secret_values
from mlops.errors import ConfigError, SourceError
from mlops.layout import WorkspaceLayout
from mlops.project import DataPath, read_data

CONFIG_FILE = "mlops.toml"
# How far past the target a validation accuracy stops a training (stop_at_target): a test set measures a
# little below the validation split as often as above it, and one more epoch costs less than one more trial.
STOP_MARGIN = 0.02
FLAGS = {
    "timeout_s": "--timeout",
    "memory_mb": "--memory",
    "disk_mb": "--disk",
}  # settings whose flag is not their name


@dataclass(frozen=True)
class Environment:
    """This process's environment, read once (by :func:`load_settings`) and passed down with the settings:
    the values mlops itself uses, typed, and a snapshot for the child processes it starts (git, uv, Ray).
    Never written to the ledger or a log: it holds secrets."""

    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    secrets: tuple[str, ...] = ()  # the values the redactor masks (mlops/envsafe.py: secret_values)
    mlflow_tracking_uri: str | None = None  # MLFLOW_TRACKING_URI: where a finished run is logged
    webhook_secret: str | None = (
        None  # MLOPS_WEBHOOK_SECRET: what `mlops serve` checks a push's signature with
    )
    docker_host: str | None = None  # DOCKER_HOST: the engine of --runtime docker (None: the local socket)

    @classmethod
    def of(cls, env: Mapping[str, str]) -> Environment:
        snapshot = MappingProxyType(dict(env))
        return cls(
            variables=snapshot,
            secrets=tuple(secret_values(snapshot)),
            mlflow_tracking_uri=snapshot.get("MLFLOW_TRACKING_URI") or None,
            webhook_secret=snapshot.get("MLOPS_WEBHOOK_SECRET") or None,
            docker_host=snapshot.get("DOCKER_HOST") or None,
        )

    @property
    def redactor(self) -> Redactor:
        return Redactor(self.secrets)

    def child(self, **extra: str) -> dict[str, str]:
        """The environment of a child process: this snapshot with ``extra`` set."""
        return {**self.variables, **extra}

    def __repr__(self) -> str:  # never the values
        return f"Environment({len(self.variables)} variables)"


def read_environment() -> Environment:
    """The process's environment, now: the one place outside the harness that reads ``os.environ``."""
    return Environment.of(os.environ)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that needs this one's (git: HOME, PATH, its ssh agent), with
    ``extra`` set: passed on whole, no value read from it. Where settings reach, prefer
    ``settings.environment.child(...)``, the environment read with them."""
    return {**os.environ, **extra}


@dataclass(frozen=True)
class Settings:
    workspace: Path = Path(".mlops")
    target: float = 0.80
    max_trials: int = 5
    max_minutes: float | None = None  # wall-time budget of a run
    strategy: StrategyName = StrategyName.TPE
    runtime: RuntimeName = RuntimeName.AUTO
    parallel: int = 1
    # A new commit of a script tuned before starts where its last run ended (its best changes first, its
    # trials seeding the search: tweak/warm.py); --no-warm-start: from scratch.
    warm_start: bool = True
    # A commit whose metric as pushed or best drops by more than this against the script's previous commit
    # is a regression (mlops/regression.py); for a loss, rising by more than this.
    regression_tolerance: float = 0.02
    timeout_s: float = 1800.0  # per trial launch
    memory_mb: int = 4096
    cpus: float | None = None
    # What one trial may write (its folder, work/ in it, its /tmp), and its processes and threads.
    disk_mb: int = 8192
    disk_files: int = 100_000
    pids: int = 512
    network: bool = True
    install: bool = True  # install what the pushed code needs (mlops/envs/); --no-install: the base only
    # Direct references a pushed requirement file may name (fnmatch patterns of a path in the repository or
    # of a URL): the machine's owner's choice, never the pusher's (mlops/envs/policy.py). None by default.
    allow_sources: tuple[str, ...] = ()
    source_builds: bool = True  # a package with no wheel is built from source, in the build sandbox
    seed: int = 0
    cluster_metric: ClusterMetric = ClusterMetric.SILHOUETTE
    checkpoint_every_batches: int = 0
    max_restarts: int = 3
    # A Keras fit stops after this many epochs without a better monitored value (best weights kept); 0: never.
    patience: int = 3
    # A Keras fit stops once its validation accuracy is STOP_MARGIN past the target (without validation data,
    # its training accuracy, by a wider margin: mlops_harness/keras_hooks.py; see README).
    stop_at_target: bool = True
    keep_models: KeepModels = KeepModels.BEST  # which trials keep their model once the run ends
    keep_checkpoints: bool = False  # keep a finished trial's checkpoints after its model is saved
    keep_work: bool = False  # keep the trials' work/ folders (what the script wrote) once the run ends
    commit_best: bool = False  # commit the best source to branch mlops/best-<run> of the user's repository
    ray_address: str | None = None  # the Ray cluster of --runtime ray (host:port)
    storage: str | None = (
        None  # where Ray trials keep checkpoints for every node: a folder or a pyarrow.fs URI
    )
    gpus: int = 0  # GPUs per trial
    unsandboxed: bool = False  # --runtime local without the sandbox: trials read what this user can
    trial_env: tuple[str, ...] = ()  # variables of this environment a training may see (names)
    repositories: tuple[str, ...] = ()  # what mlops serve trains: clone URLs or owner/name
    data: tuple[DataPath, ...] = ()  # a site's data folders, as mlops.yaml's data: ([mlops.data]; YAML text)
    data_roots: tuple[str, ...] = ()  # folders under which a push's mlops.yaml may map data: (absolute)
    # What is built once per machine and shared by every workspace (the PyTorch and legacy Keras environments):
    # $XDG_CACHE_HOME/mlops, else ~/.cache/mlops.
    machine_cache: Path | None = None
    verbose: bool = False
    # Not a setting: the process's environment, read with the settings (see Environment).
    environment: Environment = field(default_factory=Environment, repr=False, compare=False)

    # Settings that define what a run is searching for: a resume must not change them.
    IDENTITY = RunSettings.IDENTITY

    def identity(self) -> dict[str, Any]:
        return self.for_run().identity()

    def for_run(self) -> RunSettings:
        """The settings a run keeps (in the ledger), from these."""
        return RunSettings(**{f.name: getattr(self, f.name) for f in fields(RunSettings)})

    def to_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in NOT_SETTINGS}

    @property
    def ledger_path(self) -> Path:
        return WorkspaceLayout(self.workspace).ledger

    @property
    def runs_dir(self) -> Path:
        return WorkspaceLayout(self.workspace).runs


NOT_SETTINGS = frozenset({"environment"})  # fields of Settings no file, variable or flag sets


def _plain(value: Any) -> Any:
    """A value as JSON and the ledger hold it: enums as their strings, paths as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)  # a data folder (DataPath)
    return value


def _types() -> dict[str, Any]:
    """Each setting's type, with ``X | None`` reduced to ``X`` (None is written as an empty value)."""
    out: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(Settings).items():
        if name in NOT_SETTINGS:
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if isinstance(hint, types.UnionType) and len(args) == 1 else hint
    return out


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    """``raw`` (text from a file or the environment, or a flag's value) as the setting's type."""
    if name == "data":
        return _data(raw)
    if typing.get_origin(kind) is tuple:  # a list: a TOML array, or comma-separated text
        items = [item.strip() for item in raw.split(",")] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
            raise ConfigError(f"setting {name} must be a list of strings but got {raw!r}")
        return tuple(item for item in items if item)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(str(raw).strip().lower())
        except ValueError:
            allowed = ", ".join(str(member.value) for member in kind)
            raise ConfigError(f"{name} must be one of {allowed} but got {raw!r}") from None
    if not isinstance(raw, str):
        if kind is float and isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, kind):
            return raw
        raise ConfigError(f"setting {name} must be of type {kind.__name__} but got {raw!r}")
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is Path:
            return Path(text)
        if kind is int:
            return int(text)
        if kind is float:
            return None if text.lower() in ("", "none") else float(text)
    except ValueError:
        raise ConfigError(f"setting {name} must be of type {kind.__name__} but got {raw!r}") from None
    return text


def _data(raw: Any) -> tuple[DataPath, ...]:
    """The site's data: a table, or (in the environment) the same in YAML: ``{/root/train_set: /srv/d}``."""
    if isinstance(raw, tuple):  # given as DataPath entries (a caller's flags)
        return raw
    try:
        return read_data(yaml.safe_load(raw) if isinstance(raw, str) else raw, "data", root=None)
    except yaml.YAMLError as e:
        raise ConfigError(f"data: not valid YAML: {e}") from None
    except SourceError as e:
        raise ConfigError(f"setting {e}") from None


def _positive(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value > 0)


def validate(settings: Settings, origins: Mapping[str, str] | None = None) -> Settings:
    """The settings if every value can work; else ConfigError naming the setting, the value and, from
    ``origins`` (setting -> the file, variable or flag that gave it), where it came from."""
    s = settings
    checks: list[tuple[str, bool, str]] = [
        (
            "target",
            0 < s.target <= 1,
            f"target must be a fraction between 0 and 1 (0.8 for 80%) but got {s.target:g}",
        ),
        ("max_trials", s.max_trials >= 1, f"max_trials must be at least 1 but got {s.max_trials}"),
        ("parallel", s.parallel >= 1, f"parallel must be at least 1 but got {s.parallel}"),
        ("timeout_s", _positive(s.timeout_s), f"timeout must be positive but got {s.timeout_s:g}"),
        ("memory_mb", s.memory_mb >= 64, f"memory must be at least 64 MB but got {s.memory_mb}"),
        ("cpus", _positive(s.cpus), f"cpus must be positive but got {s.cpus}"),
        ("disk_mb", s.disk_mb >= 16, f"disk must be at least 16 MB but got {s.disk_mb}"),
        ("disk_files", s.disk_files >= 64, f"disk_files must be at least 64 but got {s.disk_files}"),
        ("pids", s.pids >= 16, f"pids must be at least 16 but got {s.pids}"),
        ("cpus", s.cpus is None or s.cpus >= 0.01, f"cpus must be at least 0.01 but got {s.cpus}"),
        ("max_minutes", _positive(s.max_minutes), f"max_minutes must be positive but got {s.max_minutes}"),
        ("max_restarts", s.max_restarts >= 0, f"max_restarts must be at least 0 but got {s.max_restarts}"),
        ("patience", s.patience >= 0, f"patience must be at least 0 but got {s.patience}"),
        (
            "checkpoint_every_batches",
            s.checkpoint_every_batches >= 0,
            f"checkpoint_every_batches must be at least 0 but got {s.checkpoint_every_batches}",
        ),
        ("seed", s.seed >= 0, f"seed must be at least 0 but got {s.seed}"),
        (
            "regression_tolerance",
            math.isfinite(s.regression_tolerance) and s.regression_tolerance >= 0,
            f"regression_tolerance must be at least 0 but got {s.regression_tolerance:g}",
        ),
        ("gpus", s.gpus >= 0, f"gpus must be at least 0 but got {s.gpus}"),
        (
            "unsandboxed",
            not s.unsandboxed or s.runtime is not RuntimeName.DOCKER,
            "unsandboxed applies to the local runtime only, not to docker",
        ),
    ]
    for name, ok, message in checks:
        if not ok:
            where = (origins or {}).get(name)
            raise ConfigError(f"{where}: {message}" if where else message)
    relative = [root for root in s.data_roots if not os.path.isabs(root)]
    if relative:
        where = (origins or {}).get("data_roots")
        message = f"data_roots must be absolute folders but got {relative[0]!r}"
        raise ConfigError(f"{where}: {message}" if where else message)
    try:
        check_names(s.trial_env, "trial_env")
    except ValueError as e:
        where = (origins or {}).get("trial_env")
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None
    return s


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """File (``mlops.toml`` in the current folder, or ``config_file``), then MLOPS_* variables, then flags."""
    environment = read_environment() if env is None else Environment.of(env)
    env = environment.variables
    kinds = _types()
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    path = config_file or Path(env.get("MLOPS_CONFIG", CONFIG_FILE))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            line = e.object[: e.start].count(b"\n") + 1
            raise ConfigError(
                f"{path}:{line}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})"
            ) from e
        except (tomllib.TOMLDecodeError, OSError) as e:
            raise ConfigError(f"{path}: {e}") from e
        data = data.get("mlops", data)
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in kinds:
                raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(kinds))})")
            try:
                values[name] = _coerce(name, kinds[name], value)
            except ConfigError as e:
                raise ConfigError(f"{path}: {e}") from None
            origins[name] = str(path)
    for name, kind in kinds.items():
        raw = env.get(f"MLOPS_{name.upper()}")
        if raw is not None and raw != "":
            try:
                values[name] = _coerce(name, kind, raw)
            except ConfigError as e:
                raise ConfigError(f"MLOPS_{name.upper()}: {e}") from None
            origins[name] = f"MLOPS_{name.upper()}"
    for name, value in (flags or {}).items():
        if value is not None and name in kinds:
            values[name] = _coerce(name, kinds[name], value)
            origins[name] = FLAGS.get(name, "--" + name.replace("_", "-"))
    settings = validate(replace(Settings(), **values), origins)
    # Trials run in other working directories (their own folders, containers): paths must not be relative.
    cache = settings.machine_cache or Path(env.get("XDG_CACHE_HOME") or "~/.cache") / "mlops"
    return replace(
        settings,
        workspace=settings.workspace.expanduser().resolve(),
        machine_cache=cache.expanduser().resolve(),
        environment=environment,
    )
