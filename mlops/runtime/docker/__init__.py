"""The Docker runtime (docker-py): the only package that imports docker."""

from mlops.runtime.docker.images import TRIAL_USER, Images
from mlops.runtime.docker.runtime import (
    CACHE_VOLUME,
    LABEL,
    TRIALS_BRIDGE,
    TRIALS_NETWORK,
    DockerHandle,
    DockerRuntime,
    engine_available,
)

__all__ = [
    "CACHE_VOLUME",
    "LABEL",
    "TRIALS_BRIDGE",
    "TRIALS_NETWORK",
    "TRIAL_USER",
    "DockerHandle",
    "DockerRuntime",
    "Images",
    "engine_available",
]
