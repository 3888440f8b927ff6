"""Library generations: the current one (Keras 3, scikit-learn 1.9), the legacy one (TensorFlow 2.15 with
Keras 2, scikit-learn 1.5, numpy 1.26) and PyTorch's (torch and torchvision, with scikit-learn and numpy),
chosen from what the code imports (torch), its pinned framework versions, or job 2's verdict.

The versions of each generation are those of its training image: the ``pip install`` line of
``dockerfiles/keras3.Dockerfile``, ``keras2.Dockerfile`` and ``pytorch.Dockerfile``, the one place they are
written. On Docker a generation is that image; on the local runtime the current generation is the project's
own interpreter and the others venvs built from the same pins, once per machine (``mlops/envs/local.py``).
"""

from __future__ import annotations

import enum
import functools
import re
import shlex

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlops import images
from mlops.domain import Image
from mlops.envs.needs import Need


class Generation(enum.StrEnum):
    CURRENT = "current"  # the images and the venv of today: Keras 3, scikit-learn 1.9, numpy 2
    LEGACY = "legacy"  # TensorFlow 2.15 with Keras 2, scikit-learn 1.5, numpy 1.26 (the mlops-keras2 image)
    PYTORCH = "pytorch"  # torch and torchvision, scikit-learn, numpy (the mlops-pytorch image)

    def describe(self) -> str:
        pins = pins_of(IMAGE_OF[self])
        shown = [f"{name} {pins[name]}" for name in SHOWN if name in pins]
        return f"{self.value} ({', '.join(shown[:3])})"


IMAGE_OF = {
    Generation.CURRENT: Image.KERAS3,
    Generation.LEGACY: Image.KERAS2,
    Generation.PYTORCH: Image.PYTORCH,
}
SHOWN = ("torch", "torchvision", "tensorflow-cpu", "keras", "scikit-learn")  # a generation's names, in words
# The modules of PyTorch and what is built on it: code that imports one of them runs in the PyTorch generation
# (whatever else it imports or pins: a Keras-2-looking import beside torch is not Keras 2 code to run).
TORCH_MODULES = frozenset({"torch", "torchvision", "torchaudio", "torchtext", "torchmetrics", "lightning",
                           "pytorch_lightning"})  # fmt: skip
# A pin of one of these names, below the current generation's version, asks for the legacy generation.
FRAMEWORKS = {
    "tensorflow": "tensorflow-cpu",
    "tensorflow-cpu": "tensorflow-cpu",
    "tensorflow-gpu": "tensorflow-cpu",
    "tensorflow-intel": "tensorflow-cpu",
    "keras": "keras",
    "scikit-learn": "scikit-learn",
    "sklearn": "scikit-learn",
}
PIP_INSTALL = re.compile(r"pip install((?:[^\n\\]|\\\n)+)")


@functools.cache
def pins_of(image: Image) -> dict[str, str]:
    """The ``name==version`` pins of an image's Dockerfile, by canonical name (Keras 2 is TensorFlow's)."""
    text = images.dockerfile(image).read_text(encoding="utf-8")
    pins: dict[str, str] = {}
    for match in PIP_INSTALL.finditer(text):
        for word in shlex.split(match.group(1).replace("\\\n", " ")):
            name, sep, version = word.partition("==")
            if sep:
                pins[canonicalize_name(name)] = version
    if image is Image.KERAS2 and "keras" not in pins and "tensorflow-cpu" in pins:
        pins["keras"] = pins["tensorflow-cpu"].rsplit(".", 1)[0]  # TF 2.15 brings Keras 2.15
    return pins


def requirements_of(generation: Generation) -> list[str]:
    """The generation's pinned requirements (what its local venv installs)."""
    pins = pins_of(IMAGE_OF[generation])
    return [f"{name}=={version}" for name, version in pins.items() if not _bundled(generation, name)]


def _bundled(generation: Generation, name: str) -> bool:
    return generation is Generation.LEGACY and name == "keras"  # installed by tensorflow-cpu itself


def wants_older(specifier: SpecifierSet, current: str) -> bool:
    """True when ``specifier`` refuses ``current`` and asks for an older version (``==2.4``, ``<3``)."""
    try:
        now = Version(current)
    except InvalidVersion:
        return False
    if not specifier or specifier.contains(now, prereleases=True):
        return False
    for clause in specifier:
        if clause.operator in ("==", "===", "~=", "<", "<="):
            try:
                if Version(clause.version.removesuffix(".*")) < now:
                    return True
            except InvalidVersion:
                continue
    return False


def choose(needs: list[Need], legacy_api: bool, torch: str = "") -> tuple[Generation, str]:
    """The generation the code was written for, and why. ``torch``: where the code imports PyTorch (the
    import's origin, ``train.py:3: import torch``), or ""; a requirement of torch counts as much."""
    asked = next(
        (n for n in needs if n.name in ("torch", "torchvision", "lightning", "pytorch-lightning")), None
    )
    if torch or asked is not None:
        return Generation.PYTORCH, (torch or f"{asked.origin if asked else ''} asks for PyTorch").strip()
    current = pins_of(IMAGE_OF[Generation.CURRENT])
    for need in needs:
        target = FRAMEWORKS.get(need.name)
        if target is None or target not in current:
            continue
        req = Requirement(need.requirement)
        if wants_older(req.specifier, current[target]):
            return (
                Generation.LEGACY,
                f"{need.origin} asks for {req} (the current generation has {target} {current[target]})",
            )
    if legacy_api:
        return Generation.LEGACY, "job 2 found Keras 2 code"
    return Generation.CURRENT, ""
