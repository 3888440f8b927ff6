"""Import name -> the distribution that provides it on the package index, from pipreqs's mapping.

pipreqs (on PyPI) ships and maintains the table of import names whose distribution is called otherwise
(``sklearn`` -> ``scikit-learn``, ``PIL`` -> ``Pillow``, ``yaml`` -> ``PyYAML``, about 1,150 of them); it is
installed as data only (``--no-deps``, see requirements-nodeps.txt) and read here. A name it does not list
is its own distribution's name, as pipreqs itself assumes. Two names are added where pipreqs has no entry
and where the choice matters here: OpenCV's ``cv2``, whose headless build is the one that imports in a
container without a display's libraries, and ``skimage``.
"""

from __future__ import annotations

import functools
import importlib.resources

from mlops.errors import RuntimeUnavailable

MISSING_FROM_PIPREQS = {"cv2": "opencv-python-headless", "skimage": "scikit-image"}


@functools.cache
def pipreqs_mapping() -> dict[str, str]:
    """pipreqs's ``import:distribution`` table."""
    try:
        text = (importlib.resources.files("pipreqs") / "mapping").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise RuntimeUnavailable(
            "the import -> distribution table of pipreqs is not installed: "
            "pip install --no-deps -r requirements-nodeps.txt (make setup does it)"
        ) from e
    table: dict[str, str] = {}
    for line in text.splitlines():
        module, sep, dist = line.strip().partition(":")
        if sep and module and dist:
            table.setdefault(module, dist)
    return table


@functools.cache
def python2_modules() -> frozenset[str]:
    """Standard-library names of both Pythons in pipreqs's list (``cPickle``, ``urllib2``): never installed."""
    try:
        text = (importlib.resources.files("pipreqs") / "stdlib").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return frozenset()
    return frozenset(line.strip().split(".")[0] for line in text.splitlines() if line.strip())


def distribution_for(module: str) -> str:
    """The distribution to install for ``import module`` (its top-level name)."""
    top = module.split(".")[0]
    return MISSING_FROM_PIPREQS.get(top) or pipreqs_mapping().get(top) or top
