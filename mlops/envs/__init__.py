"""Environments, resolved per run and cached: what the pushed code needs, installed with uv over the
training image (Docker: a derived image) or the interpreter (local: a venv that sees the base's packages).

- :mod:`~mlops.envs.needs` reads what the code asks for (requirement files, else its imports);
- :mod:`~mlops.envs.distributions` maps an import to its distribution (pipreqs's table);
- :mod:`~mlops.envs.generations` chooses the library generation (current, or legacy Keras 2);
- :mod:`~mlops.envs.resolve` decides what to install over which base and keys the result;
- :mod:`~mlops.envs.store` builds each key once (a lock, a manifest written last);
- :mod:`~mlops.envs.local` and :mod:`~mlops.envs.images` make them for each runtime;
- :mod:`~mlops.envs.uv` runs uv with the machine's package index.

A run's environment is recorded in the ledger (its run's ``environment`` column), so a resumed run, the Jenkins
jobs and the monitor use the same one.
"""

from __future__ import annotations

from mlops.envs.base import Base, Environment
from mlops.envs.generations import Generation
from mlops.envs.resolve import MAX_PACKAGES, Builder, Request, resolve
from mlops.envs.store import Store
from mlops.envs.uv import Uv
from mlops.ledger import Ledger

__all__ = [
    "MAX_PACKAGES",
    "Base",
    "Builder",
    "Environment",
    "Generation",
    "Request",
    "Store",
    "Uv",
    "record",
    "recorded",
    "resolve",
]


def record(ledger: Ledger, run_id: str, env: Environment, message: str) -> None:
    """Make ``env`` the run's environment from now on."""
    ledger.set_environment(run_id, env.to_json(), message)


def recorded(ledger: Ledger, run_id: str) -> Environment | None:
    """The run's environment as last recorded, or None."""
    found = ledger.environment(run_id)
    return Environment.from_json(found) if found is not None else None
