"""Settings, read once: a file, then the environment, then command-line flags; the last one wins.

The resulting :class:`Settings` is passed down as an argument; nothing reads the environment later. Every
value is checked here, so a bad one stops the command (exit 2) before any work is done.
"""

from __future__ import annotations

import enum
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mlops.domain import ClusterMetric, KeepModels, RuntimeName, StrategyName
from mlops.errors import ConfigError

CONFIG_FILE = "mlops.toml"


@dataclass(frozen=True)
class Settings:
    workspace: Path = Path(".mlops")
    target: float = 0.80
    max_trials: int = 5
    max_minutes: float | None = None  # wall-time budget of a run
    strategy: StrategyName = StrategyName.TPE
    runtime: RuntimeName = RuntimeName.AUTO
    parallel: int = 1
    timeout_s: float = 1800.0  # per trial launch
    memory_mb: int = 4096
    cpus: float | None = None
    network: bool = True
    seed: int = 0
    cluster_metric: ClusterMetric = ClusterMetric.SILHOUETTE
    checkpoint_every_batches: int = 0
    max_restarts: int = 3
    keep_models: KeepModels = KeepModels.BEST  # which trials keep their model once the run ends
    keep_checkpoints: bool = False  # keep a finished trial's checkpoints after its model is saved
    commit_best: bool = False  # commit the best source to branch mlops/best-<run> of the user's repository
    verbose: bool = False

    # Settings that define what a run is searching for: a resume must not change them.
    IDENTITY = ("target", "strategy", "max_trials", "cluster_metric", "seed")

    def identity(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.IDENTITY}

    def to_json(self) -> dict[str, Any]:
        return {name: _plain(value) for name, value in asdict(self).items()}

    @property
    def ledger_path(self) -> Path:
        return self.workspace / "ledger.db"

    @property
    def runs_dir(self) -> Path:
        return self.workspace / "runs"


def _plain(value: Any) -> Any:
    """A value as JSON and the ledger hold it: enums as their strings, paths as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _types() -> dict[str, Any]:
    """Each setting's type, with ``X | None`` reduced to ``X`` (None is written as an empty value)."""
    out: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(Settings).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if isinstance(hint, types.UnionType) and len(args) == 1 else hint
    return out


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    """``raw`` (text from a file or the environment, or a flag's value) as the setting's type."""
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


def validate(settings: Settings) -> Settings:
    """The settings if every value can work; else ConfigError naming the setting and the value."""
    s = settings
    if not 0 < s.target <= 1:
        raise ConfigError(f"target must be a fraction between 0 and 1 (0.8 for 80%) but got {s.target:g}")
    checks: list[tuple[bool, str]] = [
        (s.max_trials >= 1, f"max_trials must be at least 1 but got {s.max_trials}"),
        (s.parallel >= 1, f"parallel must be at least 1 but got {s.parallel}"),
        (s.timeout_s > 0, f"timeout must be positive but got {s.timeout_s:g}"),
        (s.memory_mb >= 64, f"memory must be at least 64 MB but got {s.memory_mb}"),
        (s.cpus is None or s.cpus > 0, f"cpus must be positive but got {s.cpus}"),
        (
            s.max_minutes is None or s.max_minutes > 0,
            f"max_minutes must be positive but got {s.max_minutes}",
        ),
        (s.max_restarts >= 0, f"max_restarts must be at least 0 but got {s.max_restarts}"),
        (
            s.checkpoint_every_batches >= 0,
            f"checkpoint_every_batches must be at least 0 but got {s.checkpoint_every_batches}",
        ),
        (s.seed >= 0, f"seed must be at least 0 but got {s.seed}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return s


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """File (``mlops.toml`` in the current folder, or ``config_file``), then MLOPS_* variables, then flags."""
    env = os.environ if env is None else env
    kinds = _types()
    values: dict[str, Any] = {}
    path = config_file or Path(env.get("MLOPS_CONFIG", CONFIG_FILE))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as e:
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
    for name, kind in kinds.items():
        raw = env.get(f"MLOPS_{name.upper()}")
        if raw is not None and raw != "":
            try:
                values[name] = _coerce(name, kind, raw)
            except ConfigError as e:
                raise ConfigError(f"MLOPS_{name.upper()}: {e}") from None
    for name, value in (flags or {}).items():
        if value is not None and name in kinds:
            values[name] = _coerce(name, kinds[name], value)
    settings = validate(replace(Settings(), **values))
    # Trials run in other working directories (their own folders, containers): paths must not be relative.
    return replace(settings, workspace=settings.workspace.expanduser().resolve())
