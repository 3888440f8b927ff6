"""Why a script failed, in one class with a one-line hint a person can act on.

The harness gives every exception the user's script raises a :class:`~mlops_harness.protocol.FailureClass`
(the runtime's own ends, a kill, the memory or the time limit, are classed by the orchestrator). The rules
look at the exception's type, its message and where it was raised, nothing else, so each is a small pure
function testable without running anything. The classes decide what the orchestrator does next: a missing
module, old library code, missing data, a failed download or a prompt cannot be fixed by tuning the model,
so the run stops there with the hint instead of proposing trials that fail the same way.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlops_harness import datasets
from mlops_harness.protocol import FailureClass

FRAMEWORKS = ("keras", "tensorflow", "tf_keras", "sklearn", "torch", "torchvision")
# Import names whose distribution is called otherwise on the package index.
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "PyYAML",
    "bs4": "beautifulsoup4",
    "tensorflow_datasets": "tensorflow-datasets",
}
# Names that a fragment (a notebook cell pasted without the cells above it) uses without importing them, with
# the import that gives each.
LAYERS = ("Dense", "Conv2D", "Conv1D", "MaxPooling2D", "MaxPool2D", "Flatten", "Dropout", "Input", "LSTM",
          "BatchNormalization", "Embedding", "Activation", "GlobalAveragePooling2D", "AveragePooling2D")  # fmt: skip
IMPORTS = {
    **{name: f"from keras.layers import {name}" for name in LAYERS},
    "Sequential": "from keras.models import Sequential",
    "Model": "from keras.models import Model",
    "to_categorical": "from keras.utils import to_categorical",
    "keras": "import keras",
    "tf": "import tensorflow as tf",
    "np": "import numpy as np",
    "pd": "import pandas as pd",
    "plt": "import matplotlib.pyplot as plt",
    "train_test_split": "from sklearn.model_selection import train_test_split",
    "KMeans": "from sklearn.cluster import KMeans",
}
# What old Keras, TensorFlow and scikit-learn code runs into on the current versions.
API_MESSAGES = re.compile(
    r"unexpected keyword argument|Unrecognized keyword argument|Invalid filepath extension|"
    r"Cannot convert '?\d+'? to a shape|has no attribute '(?:predict_classes|predict_proba|fit_generator|"
    r"evaluate_generator|predict_generator|np_utils|get_session|set_session)'|is deprecated|was removed|"
    r"only supports the 'lbfgs'|does not support (?:a )?multiclass|Solver \w+ supports only",
)
DOWNLOAD_MESSAGES = re.compile(r"URL fetch failure|urlopen error|Failed to establish a new connection|"
                               r"Temporary failure in name resolution|Name or service not known|Max retries exceeded")  # fmt: skip
DOWNLOAD_TYPES = {"URLError", "HTTPError", "ConnectionError", "gaierror", "RemoteDisconnected", "SSLError"}
URL = re.compile(r"https?://[^\s'\"<>)]+")


@dataclass(frozen=True)
class Failure:
    cls: FailureClass
    hint: str


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__))


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _close_installed(name: str) -> str | None:
    """An importable top-level module whose name is close to ``name`` (a typo: ``kera`` for ``keras``)."""
    import difflib
    import pkgutil

    names = {m.name for m in pkgutil.iter_modules() if not m.name.startswith("_")}
    names |= {n for n in sys.builtin_module_names if not n.startswith("_")}
    close = difflib.get_close_matches(name, sorted(names - {name}), n=1, cutoff=0.8)
    return close[0] if close else None


def _missing_module(exc: BaseException, user_line: str) -> Failure | None:
    if not isinstance(exc, ImportError):
        return None
    name = getattr(exc, "name", None) or ""
    top = name.split(".")[0]
    message = str(exc)
    if isinstance(exc, ModuleNotFoundError) and top and not (top in FRAMEWORKS and _importable(top)):
        dist = DISTRIBUTIONS.get(top, top)
        meant = _close_installed(top)
        if meant is not None:
            return Failure(
                FailureClass.ENVIRONMENT,
                f"the module {top!r} is not installed in this environment{user_line}: did you mean "
                f"{meant!r}? (it is installed); else list {dist} in the repository's requirements.txt",
            )
        return Failure(
            FailureClass.ENVIRONMENT,
            f"the module {top!r} is not installed in this environment{user_line}: list {dist} in the "
            "repository's requirements.txt",
        )
    if top in FRAMEWORKS or any(f"'{f}" in message or f" {f}." in message for f in FRAMEWORKS):
        return Failure(
            FailureClass.API,
            f"{message}{user_line}: the code was written for another version of {top or 'the library'} "
            "(a name that moved or went away)",
        )
    return None


def _shadowing(exc: BaseException, work_root: Path, script: Path) -> Failure | None:
    """A file of the repository that hides a module of the standard library or of an installed package."""
    root = os.path.realpath(work_root)
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    for frame in _frames(exc):
        path = os.path.realpath(frame.filename)
        if not path.startswith(root) or path == os.path.realpath(script):
            continue
        stem = Path(path).stem
        where = "the standard library's" if stem in stdlib else None
        if where is None and _installed_elsewhere(stem, root):
            where = "an installed package's"
        if where:
            rel = os.path.relpath(path, root)
            return Failure(
                FailureClass.CODE,
                f"{rel} in the repository hides {where} module {stem!r}, and the code that imported "
                f"{stem!r} ran it instead: rename {rel}",
            )
    return None


def _installed_elsewhere(name: str, root: str) -> bool:
    """True when a module of that name exists outside the repository (an installed package)."""
    for entry in sys.path:
        base = os.path.realpath(entry or ".")
        if base.startswith(root):
            continue
        if os.path.isdir(os.path.join(base, name)) or os.path.isfile(os.path.join(base, f"{name}.py")):
            return True
    return False


def _data_hint(path: str, at: str) -> str:
    """Where the missing path comes from, and the mlops.yaml lines that would map its folder."""
    parts = PurePosixPath(path).parts
    if path.startswith("/"):
        # /root/train_set/data.csv: the folder the author mounted is most likely its first two levels.
        folder = str(PurePosixPath(*parts[:3])) if len(parts) > 3 or "." in parts[-1] else path
        how = "map it to a file or folder on the machine that runs the trials"
    else:
        folder = parts[0] if parts and parts[0] != "." else path
        if parts and parts[0] == "." and len(parts) > 1:
            folder = parts[1]
        how = "commit it, or map it to a file or folder on the machine that runs the trials"
    return (
        f"the script needs {path}{at}, which is not in the repository as pushed: {how}, in mlops.yaml: "
        f"data:\n  {folder}: <{'file' if PurePosixPath(folder).suffix else 'folder'} on this machine>"
    )


def classify(
    exc: BaseException,
    work_root: Path,
    script: Path,
    user_file: str | None,
    user_line: int | None,
    prompts: Sequence[str] = (),
    answers: Sequence[str] = (),
) -> Failure:
    """The class and hint of an exception the script raised (``user_file:user_line``: where, in its code)."""
    at = f" ({user_file}:{user_line})" if user_file and user_line else ""
    found = (
        _shadowing(exc, work_root, script) or _input(exc, at, prompts, answers) or _missing_module(exc, at)
    )
    if found is not None:
        return found
    if isinstance(exc, MemoryError):
        return Failure(
            FailureClass.OOM, f"the script ran out of memory{at}: raise --memory or shrink the model"
        )
    message = str(exc)
    found = _download(exc, at, message)
    if found is not None:
        return found
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return Failure(FailureClass.DATA, _data_hint(str(exc.filename or message), at))
    found = _api(exc, at, message)
    if found is not None:
        return found
    if isinstance(exc, NameError) and getattr(exc, "name", None):
        return _undefined(str(exc.name), at)
    return Failure(FailureClass.CODE, f"{type(exc).__name__} in the script's own code{at}")


def _input(exc: BaseException, at: str, prompts: Sequence[str], answers: Sequence[str]) -> Failure | None:
    """The script asked for input that was not given, or refused an answer mlops.yaml gives."""
    if isinstance(exc, EOFError):
        prompt = f" ({prompts[-1].strip()!r})" if prompts and prompts[-1].strip() else ""
        given = (
            f"mlops.yaml gives {len(answers)} answer(s) (inputs:) and the script asked more"
            if answers
            else ""
        )
        return Failure(
            FailureClass.INPUT,
            f"the script asked for input{prompt}{at}, but a training has no keyboard: "
            + (given or "give the answers in mlops.yaml (inputs: [...]) or set the value in the code"),
        )
    for index, answer in enumerate(answers[: len(prompts)]):
        if isinstance(exc, ValueError) and repr(answer) in str(exc):
            return Failure(
                FailureClass.INPUT,
                f"the answer {answer!r} that mlops.yaml gives to {prompts[index].strip()!r} (inputs: item "
                f"{index + 1}){at} is not what the script expects: {exc}",
            )
    return None


def _download(exc: BaseException, at: str, message: str) -> Failure | None:
    """A download the script tried (trials may not reach the internet), and how to import the file."""
    if not (type(exc).__name__ in DOWNLOAD_TYPES or DOWNLOAD_MESSAGES.search(message)):
        return None
    url = URL.search(message)
    what = url.group(0).rstrip(":.,;") if url else "a file"
    line = datasets.import_line(exc, what if url else None, os.environ)
    fix = (
        f"download it once where the internet is reachable, then `{line}` puts it where every trial reads it"
        if line
        else "put the file in the dataset cache (`mlops datasets import FILE`) so nothing is downloaded"
    )
    return Failure(
        FailureClass.DOWNLOAD,
        f"could not download {what}{at}: trials here may not reach the internet; {fix}",
    )


def _api(exc: BaseException, at: str, message: str) -> Failure | None:
    """Code written for another version of its library (a history key, an argument or attribute renamed)."""
    if isinstance(exc, KeyError) and message.strip("'\"") in ("accuracy", "acc", "val_accuracy", "val_acc"):
        return Failure(
            FailureClass.API,
            f"KeyError: {message}{at}: Keras names the history's accuracy 'acc' or 'accuracy' after what "
            "compile(metrics=[...]) was given, and older versions named it differently",
        )
    if isinstance(exc, AttributeError | TypeError | ValueError | KeyError) and API_MESSAGES.search(message):
        return Failure(
            FailureClass.API,
            f"{type(exc).__name__}: {message.splitlines()[0] if message else ''}{at}: the code was written "
            "for another version of its library",
        )
    return None


def _undefined(name: str, at: str) -> Failure:
    """A name the script uses and never defines: a fragment's missing imports, or what cells above made."""
    if name in IMPORTS:
        return Failure(
            FailureClass.CODE,
            f"the script uses {name}{at} without importing it: is it a fragment (a notebook cell without the "
            f"cells above it)? Add `{IMPORTS[name]}` at its top",
        )
    return Failure(
        FailureClass.CODE,
        f"the script uses {name}{at} and never defines it: code that makes it is not in the push (a notebook "
        "cell above this one?)",
    )
