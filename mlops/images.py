"""The training images: which Dockerfile builds each, and the tag that names what went into it.

A tag is a hash of the Dockerfile (whose ``pip install`` line holds the image's pinned requirements) and
the harness, so an image that is up to date is found by its tag and not rebuilt, and a change to either
makes a new one. The user's code is never in an image (it is mounted), so pushing new model code rebuilds
nothing. This module only names things (the Dockerfile of an image, the tag of its inputs); building and
running them is the Docker runtime's job (``mlops/runtime/docker/``, the one package that imports docker).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlops.domain import Image
from mlops.errors import RuntimeUnavailable

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = ROOT / "dockerfiles"
HARNESS = ROOT / "mlops_harness"  # the package copied into every image: its .py files (see .dockerignore)


def dockerfile(image: Image | str) -> Path:
    """The Dockerfile that builds ``image``; RuntimeUnavailable naming the missing file if there is none."""
    name = str(image).removeprefix("mlops-")
    path = DOCKERFILES / f"{name}.Dockerfile"
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in DOCKERFILES.glob("*.Dockerfile")))
        raise RuntimeUnavailable(
            f"no Dockerfile for image {image} ({path.relative_to(ROOT)} is missing; there are: {known}); "
            "run this code with --runtime local, or add that Dockerfile"
        )
    return path


def hash_files(*paths: Path) -> str:
    """A short hash of the files' names and contents, in order."""
    digest = hashlib.sha256()
    for part in paths:
        digest.update(part.name.encode())
        digest.update(part.read_bytes())
    return digest.hexdigest()[:12]


def harness_files() -> list[Path]:
    """The harness's files that go into an image, sorted."""
    return sorted(HARNESS.glob("*.py"))


def content_hash(image: Image | str) -> str:
    return hash_files(dockerfile(image), *harness_files())


def tag(image: Image | str) -> str:
    """``<name>:<hash of its inputs>``: the tag a build of this checkout's Dockerfile and harness gets."""
    return f"{image}:{content_hash(image)}"


# The images whose frameworks use GPUs, for the CPU image a trial given GPUs would otherwise run in.
GPU_VARIANTS: dict[Image, Image] = {Image.KERAS3: Image.KERAS3_GPU, Image.PYTORCH: Image.PYTORCH_GPU}


def buildable(gpu: bool = False) -> list[Image]:
    """The images this checkout has a Dockerfile for (the CUDA variants, several GB each, only with ``gpu``)."""
    return [
        image
        for image in Image
        if (DOCKERFILES / f"{str(image).removeprefix('mlops-')}.Dockerfile").is_file()
        and (gpu or image not in GPU_VARIANTS.values())
    ]


def for_gpus(image: Image | str, gpus: int) -> str:
    """The image to run for ``image`` when the trial asks for ``gpus`` GPUs: its CUDA variant if it has one
    (scikit-learn and the legacy Keras 2 image run on the CPU whatever is asked)."""
    if gpus <= 0 or not image:
        return str(image)
    try:
        return str(GPU_VARIANTS.get(Image(image), image))
    except ValueError:
        return str(image)
