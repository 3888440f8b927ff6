"""The training images: which Dockerfile builds each, and the tag that names what went into it.

A tag is a hash of the Dockerfile and the harness, so an image that is up to date is found by its tag and
not rebuilt, and a change to either makes a new one. The user's code is never in an image (it is mounted),
so pushing new model code rebuilds nothing. Building and running are in ``mlops/runtime/docker.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlops.domain import Image
from mlops.errors import RuntimeUnavailable

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = ROOT / "dockerfiles"
HARNESS = ROOT / "mlops" / "harness.py"


def dockerfile(image: Image | str) -> Path:
    name = str(image).removeprefix("mlops-")
    path = DOCKERFILES / f"{name}.Dockerfile"
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in DOCKERFILES.glob("*.Dockerfile")))
        raise RuntimeUnavailable(
            f"no Dockerfile for image {image} ({path.relative_to(ROOT)} is missing; there are: {known}); "
            "run this code with --runtime local, or add that Dockerfile"
        )
    return path


def content_hash(image: Image | str) -> str:
    digest = hashlib.sha256()
    for part in (dockerfile(image), HARNESS):
        digest.update(part.name.encode())
        digest.update(part.read_bytes())
    return digest.hexdigest()[:12]


def tag(image: Image | str) -> str:
    return f"{image}:{content_hash(image)}"


def buildable() -> list[Image]:
    """The images this checkout has a Dockerfile for."""
    return [
        image
        for image in Image
        if (DOCKERFILES / f"{str(image).removeprefix('mlops-')}.Dockerfile").is_file()
    ]
