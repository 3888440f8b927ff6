"""Settings, read once: a file, then the environment, then command-line flags; the last one wins.

The resulting :class:`Settings` is passed down as an argument; nothing reads the environment later.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError

CONFIG_FILE = "mlops.toml"
RUNTIMES = ("auto", "local", "docker")


@dataclass(frozen=True)
class Settings:
    workspace: Path = Path(".mlops")
    target: float = 0.80
    max_trials: int = 5
    max_minutes: float | None = None  # wall-time budget of a run
    strategy: str = "tpe"
    runtime: str = "auto"
    parallel: int = 1
    timeout_s: float = 1800.0  # per trial launch
    memory_mb: int = 4096
    cpus: float | None = None
    network: bool = True
    seed: int = 0
    cluster_metric: str = "silhouette"
    checkpoint_every_batches: int = 0
    max_restarts: int = 3
    commit_best: bool = False  # commit the best source to branch mlops/best-<run> of the user's repository
    verbose: bool = False

    # Settings that define what a run is searching for: a resume must not change them.
    IDENTITY = ("target", "strategy", "max_trials", "cluster_metric", "seed")

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.IDENTITY}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["workspace"] = str(self.workspace)
        return data

    @property
    def ledger_path(self) -> Path:
        return self.workspace / "ledger.db"

    @property
    def runs_dir(self) -> Path:
        return self.workspace / "runs"


def _coerce(name: str, kind: type | str, raw: Any) -> Any:
    text = str(raw).strip()
    kind = str(kind)
    try:
        if "bool" in kind:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if "Path" in kind:
            return Path(text)
        if "int" in kind and "float" not in kind:
            return int(text)
        if "float" in kind:
            return None if text.lower() in ("", "none") else float(text)
    except ValueError:
        raise ConfigError(f"setting {name} must be of type {kind} but got {raw!r}") from None
    return text


def validate(settings: Settings) -> Settings:
    if not 0 < settings.target <= 1:
        raise ConfigError(
            f"target must be a fraction between 0 and 1 (0.8 for 80%) but got {settings.target:g}"
        )
    if settings.max_trials < 1:
        raise ConfigError(f"max_trials must be at least 1 but got {settings.max_trials}")
    if settings.parallel < 1:
        raise ConfigError(f"parallel must be at least 1 but got {settings.parallel}")
    if settings.runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)} but got {settings.runtime!r}")
    if settings.timeout_s <= 0:
        raise ConfigError(f"timeout must be positive but got {settings.timeout_s:g}")
    if settings.memory_mb < 64:
        raise ConfigError(f"memory must be at least 64 MB but got {settings.memory_mb}")
    if settings.max_restarts < 0:
        raise ConfigError(f"max_restarts must be at least 0 but got {settings.max_restarts}")
    if settings.cluster_metric not in ("silhouette", "ari"):
        raise ConfigError(f"cluster_metric must be silhouette or ari but got {settings.cluster_metric!r}")
    return settings


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """File (``mlops.toml`` in the current folder, or ``config_file``), then MLOPS_* variables, then flags."""
    env = os.environ if env is None else env
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or Path(env.get("MLOPS_CONFIG", CONFIG_FILE))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError) as e:
            raise ConfigError(f"{path}: {e}") from e
        data = data.get("mlops", data)
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in types:
                raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(types))})")
            values[name] = _coerce(name, types[name], value)
    for name, kind in types.items():
        raw = env.get(f"MLOPS_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _coerce(name, kind, raw)
    for name, value in (flags or {}).items():
        if value is not None and name in types:
            values[name] = _coerce(name, types[name], value) if isinstance(value, str) else value
    settings = validate(replace(Settings(), **values))
    # Trials run in other working directories (their own folders, containers): paths must not be relative.
    return replace(settings, workspace=settings.workspace.expanduser().resolve())
