"""The classifier on bad input (empty, binary, huge, unreadable files, odd encodings) and a repository's
entry points (training calls, followed local modules, mlops.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.classify import (
    Classification,
    Reason,
    classify_file,
    classify_source,
    find_entry_points,
)
from mlops.domain import Image, Kind
from mlops.errors import MlopsError
from tests.support.classify import CORPUS, LABELS, MODEL, TRAIN_NET, src
from tests.support.classify import notebook as _notebook
from tests.support.classify import tree as _tree
from tests.support.classify import write as _write


# ----------------------------------------------------------------------------------------------- bad input
def test_empty_file(tmp_path: Path) -> None:
    c = classify_file(_write(tmp_path, "empty.py", b""))
    assert (c.kind, c.family, c.error) == (Kind.OTHER, "none", None)
    assert c.reasons == (Reason(0, "the file is empty"),)


def test_binary_file_names_the_line(tmp_path: Path) -> None:
    c = classify_file(_write(tmp_path, "model.py", b"import keras\nx = 1\n\x89PNG\x00\x00\x01"))
    assert c.failed and "binary" in c.error and c.error_line == 3


def test_ten_megabyte_file_is_refused_quickly(tmp_path: Path) -> None:
    line = b"x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n"
    c = classify_file(_write(tmp_path, "big.py", line * (10_000_000 // len(line))))
    assert c.failed and "too large" in c.error


def test_coding_cookie_is_honoured(tmp_path: Path) -> None:
    text = "# -*- coding: cp1252 -*-\n# \u2018r\u00e9seau\u2019\nfrom keras.layers import Dense\nDense(3)\n"
    c = classify_file(_write(tmp_path, "a.py", text.encode("cp1252")))
    assert (c.kind, c.error) == (Kind.ANN, None)
    assert c.reasons[0].line == 4


def test_undeclared_latin1_falls_back(tmp_path: Path) -> None:
    text = "# donn\u00e9es\nfrom sklearn.cluster import KMeans\nKMeans(3).fit(X)\n"
    c = classify_file(_write(tmp_path, "a.py", text.encode("latin-1")))
    assert (c.kind, c.error) == (Kind.KMEANS, None)
    assert any("latin-1" in r.text for r in c.reasons)


def test_crlf_keeps_line_numbers(tmp_path: Path) -> None:
    text = "import torch.nn as nn\r\n\r\nm = nn.Conv2d(1, 2, 3)\r\n"
    c = classify_file(_write(tmp_path, "a.py", text.encode()))
    assert c.kind is Kind.CNN and c.reasons[0].line == 3


def test_mixed_tabs_and_spaces_fall_back_to_tokens() -> None:
    code = "from keras.layers import Conv2D\nif True:\n        a = 1\n\tm = Conv2D(8, 3)\n"
    c = classify_source(code)
    assert c.kind is Kind.CNN
    assert c.failed and c.error_line == 4


def test_python2_falls_back_and_reports_the_line() -> None:
    code = src("""
        from keras.models import Sequential
        from keras.layers import Dense
        print "building"
        model = Sequential()
        model.add(Dense(10, input_dim=4, init="uniform"))
        model.fit(X, Y, nb_epoch=10)
        """)
    c = classify_source(code, "old.py")
    assert (c.kind, c.api, c.image) == (Kind.ANN, "keras2", Image.KERAS2)
    assert c.error_line == 3 and "line 3" in c.error
    assert c.reasons[0].line == 5
    assert c.confidence < 0.7


def test_a_file_that_is_not_python(tmp_path: Path) -> None:
    text = b"#!/bin/sh\nset -e\npip install -r requirements.txt\npython train.py --epochs 3\n"
    c = classify_file(_write(tmp_path, "run.py", text))
    assert c.failed and c.error_line == 3
    assert (c.kind, c.family) == (Kind.OTHER, "none")


def test_deeply_nested_code_does_not_crash() -> None:
    c = classify_source("x = " + "+".join(["1"] * 100_000) + "\n")
    assert c.kind is Kind.OTHER


def test_unreadable_path() -> None:
    c = classify_file("/no/such/dir/train.py")
    assert c.failed and "cannot read" in c.error


# --------------------------------------------------------------------------------------------- entry points
def test_entry_points_are_found_by_training_calls(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "train.py": TRAIN_NET,
            "model.py": MODEL,
            "predict.py": "from model import Net\nnet = Net()\nnet.eval()\n",
            "cluster/fit_kmeans.py": "from sklearn.cluster import KMeans\nKMeans(3).fit(X)\n",
            "notebooks/explore.ipynb": _notebook("from sklearn.svm import SVC\nSVC().fit(X, y)"),
            "tests/test_model.py": "from sklearn.svm import SVC\nSVC().fit(X, y)\n",
            ".venv/lib/site.py": "from sklearn.svm import SVC\nSVC().fit(X, y)\n",
            "env2/pyvenv.cfg": "home = /usr\n",
            "env2/lib/x.py": "from sklearn.svm import SVC\nSVC().fit(X, y)\n",
            "setup.py": "from sklearn.svm import SVC\nSVC().fit(X, y)\n",
            "utils.py": "import numpy as np\nscaler.fit(X)\n",
        },
    )
    assert find_entry_points(root) == [
        Path("cluster/fit_kmeans.py"),
        Path("notebooks/explore.ipynb"),
        Path("train.py"),
    ]


def test_a_model_in_a_local_module_is_followed(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"train.py": TRAIN_NET, "model.py": MODEL})
    c = classify_file(root / "train.py")
    assert (c.kind, c.framework, c.image) == (Kind.CNN, "pytorch", Image.PYTORCH)
    assert c.reasons[0].line == 2  # the import of Net
    assert "model.py:7" in c.reasons[0].text


def test_relative_imports_in_a_package_are_followed(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/net.py": "from tensorflow import keras\n\ndef build():\n    return keras.Sequential([keras.layers.Dense(4)])\n",
            "pkg/train.py": "from .net import build\n\nm = build()\nm.fit(x, y)\n",
        },
    )
    c = classify_file(root / "pkg" / "train.py", root=root)
    assert (c.kind, c.framework) == (Kind.ANN, "tf.keras")
    assert "pkg/net.py:4" in c.reasons[0].text
    assert find_entry_points(root) == [Path("pkg/train.py")]


def test_mlops_yaml_names_the_entry_points(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "mlops.yaml": "entry_points: [sub/b.py, a.py]\n",
            "a.py": "print('no training here')\n",
            "sub/b.py": "x = 1\n",
            "other.py": "from sklearn.svm import SVC\nSVC().fit(X, y)\n",
        },
    )
    assert find_entry_points(root) == [Path("a.py"), Path("sub/b.py")]


def test_mlops_yaml_with_a_missing_entry_is_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"mlops.yaml": "entry_points:\n  - a.py\n  - gone.py\n", "a.py": "x = 1\n"})
    with pytest.raises(MlopsError, match=r"mlops\.yaml.*gone\.py"):
        find_entry_points(root)


def test_mlops_yaml_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"mlops.yaml": "entry_points: [a.py\nfoo: : :\n"})
    with pytest.raises(MlopsError, match=r"mlops\.yaml:\d+"):
        find_entry_points(root)


def test_utf16_with_a_byte_order_mark(tmp_path: Path) -> None:
    text = "from sklearn.svm import SVC\nSVC().fit(X, y)\n"
    c = classify_file(_write(tmp_path, "a.py", text.encode("utf-16")))
    assert (c.kind, c.family, c.error) == (Kind.OTHER, "svm", None)


def test_truncated_and_garbled_corpus_files_never_raise() -> None:
    import random

    rng = random.Random(7)
    for name in sorted(LABELS):
        data = (CORPUS / name).read_bytes()
        for _ in range(3):
            cut = data[: rng.randrange(1, len(data))]
            garbled = bytearray(cut)
            for _ in range(5):
                garbled[rng.randrange(len(garbled))] = rng.randrange(1, 256)
            for sample in (cut, bytes(garbled)):
                text = sample.decode("latin-1")
                c = classify_source(text, name)
                assert isinstance(c, Classification)
                assert c.error is None or c.error_line is None or c.error_line >= 1


# ------------------------------------------------------------------------------- fragments and star imports
FRAGMENT = """
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=5)
    """


def test_a_fragment_without_imports_is_read_from_its_layer_names_with_low_confidence(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"cell_7.py": FRAGMENT})
    c = classify_file(root / "cell_7.py")
    assert (c.kind, c.framework, c.error) == (Kind.CNN, "keras", None)
    assert c.confidence == 0.5
    assert "nothing imports them" in c.reasons[0].text and "Conv2D" in c.reasons[0].text
    assert find_entry_points(root) == [Path("cell_7.py")]  # it trains: it is an entry point


def test_a_star_import_of_a_local_module_is_followed_to_the_framework(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "model_layers.py": "from keras.models import Sequential\nfrom keras.layers import *\n",
            "train.py": "from model_layers import *\n" + src(FRAGMENT),
        },
    )
    c = classify_file(root / "train.py", root=root)
    assert (c.kind, c.framework) == (Kind.CNN, "keras") and c.confidence >= 0.9
    assert any("through model_layers.py" in r.text for r in c.reasons)


def test_a_star_import_of_a_module_missing_from_the_push_says_so(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"train.py": "from model_layers import *\n" + src(FRAGMENT)})
    c = classify_file(root / "train.py", root=root)
    assert c.kind is Kind.CNN and c.confidence == 0.5
    assert "from model_layers import * names a module that is not in the push" in c.reasons[0].text
    assert find_entry_points(root) == [Path("train.py")]
