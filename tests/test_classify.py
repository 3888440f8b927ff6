"""The classifier: a labelled corpus, the import forms it sees through, reasons, bad input and entry points
(the command's output is tests/test_views.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mlops.classify import (
    Api,
    Classification,
    Family,
    Framework,
    Reason,
    classify_file,
    classify_source,
    decide,
    find_entry_points,
    image_for,
)
from mlops.classify.facts import Facts, KeywordArg, MethodCall, Ref
from mlops.domain import Image, Kind
from mlops.errors import MlopsError

CORPUS = Path(__file__).parent / "fixtures" / "classify"
LABELS: dict[str, dict[str, str]] = json.loads((CORPUS / "labels.json").read_text())


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# ------------------------------------------------------------------------------------------------ corpus
@pytest.fixture(scope="module")
def corpus() -> dict[str, Classification]:
    return {name: classify_file(CORPUS / name) for name in LABELS}


def test_corpus_is_large_and_varied() -> None:
    kinds = {lab["kind"] for lab in LABELS.values()}
    assert len(LABELS) >= 60
    assert kinds == {"cnn", "ann", "kmeans", "other"}
    assert sum(name.endswith(".ipynb") for name in LABELS) >= 4
    assert {lab["framework"] for lab in LABELS.values()} >= {
        "keras",
        "tf.keras",
        "sklearn",
        "pytorch",
        "none",
    }
    assert {lab["api"] for lab in LABELS.values()} >= {"keras2", "keras3"}


def _misses(corpus: dict[str, Classification], field: str) -> list[str]:
    return [
        f"{name}: {field} is {getattr(c, field)!s}, labelled {LABELS[name][field]} "
        f"(reasons: {[r.text for r in c.reasons][:3]})"
        for name, c in corpus.items()
        if str(getattr(c, field)) != LABELS[name][field]
    ]


def test_kind_accuracy_at_least_98_percent(corpus: dict[str, Classification]) -> None:
    misses = _misses(corpus, "kind")
    accuracy = 1 - len(misses) / len(corpus)
    assert accuracy >= 0.98, f"kind accuracy {accuracy:.1%}; misses:\n" + "\n".join(misses)


@pytest.mark.parametrize("field", ["family", "framework", "api"])
def test_family_framework_and_api_match_the_labels(corpus: dict[str, Classification], field: str) -> None:
    misses = _misses(corpus, field)
    assert len(misses) <= len(corpus) * 0.03, "\n".join(misses)


def test_image_follows_framework_and_api(corpus: dict[str, Classification]) -> None:
    for name, c in corpus.items():
        assert c.image == image_for(c.kind, c.framework, c.api), name
    assert corpus["keras2_mnist_legacy.py"].image is Image.KERAS2
    assert corpus["digits_cnn_keras3.py"].image is Image.KERAS3
    assert corpus["kmeans_elbow.py"].image is Image.SKLEARN
    assert corpus["train_torch_net.py"].image is Image.PYTORCH


def test_only_the_python2_file_of_the_corpus_reports_an_error(corpus: dict[str, Classification]) -> None:
    failed = {name for name, c in corpus.items() if c.failed}
    assert failed == {"py2_keras_cnn.py"}
    assert corpus["py2_keras_cnn.py"].error_line == 11


# --------------------------------------------------------------------------------------------- image table
@pytest.mark.parametrize(
    ("kind", "framework", "api", "image"),
    [
        (Kind.CNN, Framework.KERAS, Api.KERAS3, Image.KERAS3),
        (Kind.ANN, Framework.TF_KERAS, Api.KERAS3, Image.KERAS3),
        (Kind.CNN, Framework.KERAS, Api.KERAS2, Image.KERAS2),
        (Kind.CNN, Framework.TENSORFLOW, Api.KERAS2, Image.KERAS2),
        (Kind.KMEANS, Framework.SKLEARN, Api.NONE, Image.SKLEARN),
        (Kind.ANN, Framework.SKLEARN, Api.NONE, Image.SKLEARN),
        (Kind.CNN, Framework.PYTORCH, Api.NONE, Image.PYTORCH),
        (Kind.OTHER, Framework.NONE, Api.NONE, Image.SKLEARN),
    ],
)
def test_image_for(kind: Kind, framework: Framework, api: Api, image: Image) -> None:
    assert image_for(kind, framework, api) is image
    assert image_for(kind, str(framework), str(api)) is image


# ---------------------------------------------------------------------------- what it sees through
@pytest.mark.parametrize(
    "code",
    [
        "from keras.layers import Conv2D\nm = Conv2D(8, 3)\n",
        "from keras import layers\nm = layers.Conv2D(8, 3)\n",
        "import tensorflow as tf\nm = tf.keras.layers.Conv2D(8, 3)\n",
        "from tensorflow.keras import layers as kl\nm = kl.Conv2D(8, 3)\n",
        "import keras\nm = keras.layers.convolutional.Convolution2D(8, 3, 3)\n",
        "import keras.layers as L\nm = L.SeparableConv2D(8, 3)\n",
        "from keras.layers import *\nm = DepthwiseConv2D(3)\n",
        "from keras.layers import Conv2DTranspose as Up\nm = Up(8, 3)\n",
        "import keras\nconv = keras.layers.Conv1D\nm = [conv(8, 3) for _ in range(2)]\n",
        "from keras.applications import ResNet50\nm = ResNet50(weights=None)\n",
        "import tensorflow as tf\nm = tf.keras.applications.mobilenet_v2.MobileNetV2()\n",
        "import torch.nn as nn\nm = nn.Conv2d(1, 8, 3)\n",
        "from torch import nn\nclass N(nn.Module):\n    def __init__(self):\n        self.c = nn.ConvTranspose2d(1, 2, 3)\n",
        "import torch.nn.functional as F\ny = F.conv2d(x, w)\n",
        "from torchvision import models\nm = models.resnet18()\n",
        "import tensorflow as tf\ny = tf.nn.conv2d(x, w, strides=1, padding='SAME')\n",
    ],
)
def test_convolutions_through_every_import_form(code: str) -> None:
    c = classify_source(code)
    assert c.kind is Kind.CNN, c.reasons


@pytest.mark.parametrize(
    ("code", "kind", "family"),
    [
        ("from keras.layers import Dense\nm = Dense(3)\n", Kind.ANN, Family.DENSE),
        ("import torch\nm = torch.nn.Linear(3, 2)\n", Kind.ANN, Family.DENSE),
        ("from sklearn.neural_network import MLPClassifier\nm = MLPClassifier()\n", Kind.ANN, Family.DENSE),
        ("from sklearn.cluster import KMeans\nKMeans(3).fit(X)\n", Kind.KMEANS, Family.KMEANS),
        ("from sklearn import cluster\ncluster.MiniBatchKMeans(3).fit(X)\n", Kind.KMEANS, Family.KMEANS),
        ("from keras import layers\nm = [layers.LSTM(8), layers.Dense(1)]\n", Kind.OTHER, Family.RECURRENT),
        (
            "from sklearn.linear_model import LogisticRegression as LR\nLR().fit(X, y)\n",
            Kind.OTHER,
            Family.LOGISTIC,
        ),
        ("import sklearn.tree\nsklearn.tree.DecisionTreeClassifier().fit(X, y)\n", Kind.OTHER, Family.TREE),
        ("from sklearn.svm import SVC\nSVC().fit(X, y)\n", Kind.OTHER, Family.SVM),
        (
            "from sklearn.naive_bayes import GaussianNB\nGaussianNB().fit(X, y)\n",
            Kind.OTHER,
            Family.NAIVE_BAYES,
        ),
        ("import pandas as pd\ndf = pd.read_csv('x.csv')\n", Kind.OTHER, Family.NONE),
    ],
)
def test_kinds_and_families(code: str, kind: Kind, family: Family) -> None:
    c = classify_source(code)
    assert (c.kind, c.family) == (kind, str(family)), c.reasons


def test_text_in_strings_and_comments_never_counts() -> None:
    c = classify_source(
        src('''
        """A Conv2D network lives elsewhere: keras.layers.Conv2D."""
        import keras  # we used to from keras.layers import Conv2D
        from keras.layers import Dense
        code = "model.add(Conv2D(32, 3))"
        doc = f"layers.Conv2D {code}"
        # model.add(Conv2D(8, 3))
        model = keras.Sequential([Dense(10)])
        ''')
    )
    assert c.kind is Kind.ANN
    assert not any("Conv2D" in r.text for r in c.reasons)


def test_a_local_name_that_shadows_nothing_is_not_a_layer() -> None:
    c = classify_source("def Conv2D(x):\n    return x\n\ny = Conv2D(3)\n")
    assert (c.kind, c.family, c.framework) == (Kind.OTHER, "none", "none")


# ------------------------------------------------------------------------------------------------- reasons
def test_reasons_name_the_deciding_lines() -> None:
    c = classify_source(
        src("""
        import numpy as np
        from tensorflow import keras

        model = keras.Sequential()
        model.add(keras.layers.Dense(16))
        model.add(keras.layers.Conv2D(8, 3))
        model.fit(x, y, epochs=3)
        """)
    )
    assert c.kind is Kind.CNN
    assert c.reasons[0] == Reason(6, "tensorflow.keras.layers.Conv2D: a Keras layer (convolutional)")
    assert Reason(7, ".fit() trains") in c.reasons
    assert c.confidence == pytest.approx(0.95)


def test_legacy_reasons_name_their_lines() -> None:
    c = classify_source(
        src("""
        from keras.models import Sequential
        from keras.layers import Dense
        from keras.optimizers import SGD
        m = Sequential([Dense(1)])
        m.compile(optimizer=SGD(lr=0.1), loss="mse")
        m.fit_generator(gen, steps_per_epoch=10)
        """)
    )
    assert (c.api, c.image) == ("keras2", Image.KERAS2)
    lines = {r.line: r.text for r in c.reasons}
    assert "lr=" in lines[5]
    assert "fit_generator" in lines[6]


def test_modern_keras_is_keras3() -> None:
    c = classify_source("import keras\nm = keras.layers.Dense(1)\nkeras.optimizers.Adam(learning_rate=0.1)\n")
    assert (c.api, c.image) == ("keras3", Image.KERAS3)


def test_decide_is_pure_over_hand_made_facts() -> None:
    facts = Facts(
        refs=[
            Ref("sklearn.preprocessing.StandardScaler", 3, True),
            Ref("keras.layers.Dense", 7, True),
            Ref("keras.layers.LSTM", 9, True),
        ],
        methods=[MethodCall("fit_generator", 12)],
        keywords=[KeywordArg("keras.layers.Dense", "output_dim", 7)],
    )
    c = decide(facts, "x.py")
    assert (c.kind, c.family, c.framework, c.api, c.image) == (
        Kind.OTHER,
        "recurrent",
        "keras",
        "keras2",
        Image.KERAS2,
    )
    assert c.reasons[0].line == 9
    assert {r.line for r in c.reasons} >= {7, 9, 12}


def test_to_json_shape() -> None:
    ok = classify_source("from sklearn.cluster import KMeans\nKMeans(2).fit(X)\n", "k.py").to_json()
    assert set(ok) == {"path", "kind", "family", "framework", "api", "image", "reasons", "confidence"}
    assert ok["kind"] == "kmeans" and ok["image"] == "mlops-sklearn" and ok["path"] == "k.py"
    assert ok["reasons"][0] == {
        "line": 2,
        "text": "sklearn.cluster.KMeans: a scikit-learn estimator (kmeans)",
    }
    assert 0 <= ok["confidence"] <= 1
    bad = classify_source('print "x"\n', "old.py").to_json()
    assert bad["line"] == 1 and "print" in bad["error"]
    json.dumps(bad)


# ----------------------------------------------------------------------------------------------- notebooks
def _notebook(*cells: str) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "source": c.splitlines(keepends=True), "metadata": {}, "outputs": []}
                for c in cells
            ]
            + [{"cell_type": "markdown", "source": ["Conv2D is mentioned here"], "metadata": {}}],
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
        }
    )


def test_notebook_with_magics_classifies() -> None:
    nb = _notebook(
        "%matplotlib inline\n!pip install keras\nimport keras",
        "%%time\nm = keras.Sequential([keras.layers.Dense(3)])\nm.fit(x, y)",
        "%%bash\necho 'keras.layers.Conv2D'",
    )
    c = classify_source(nb, "nb.ipynb")
    assert (c.kind, c.error) == (Kind.ANN, None)


def test_jupyter_export_with_get_ipython_classifies() -> None:
    c = classify_source(
        src("""
        #!/usr/bin/env python
        # coding: utf-8

        # In[1]:


        get_ipython().run_line_magic('matplotlib', 'inline')
        from sklearn.cluster import KMeans


        # In[ ]:


        KMeans(4).fit(X)
        """)
    )
    assert c.kind is Kind.KMEANS and c.reasons[0].line == 14


def test_broken_notebook_is_an_error_with_a_line() -> None:
    c = classify_source('{"cells": [\n  {"cell_type": "code",\n', "broken.ipynb")
    assert c.failed and "not a notebook" in c.error and c.error_line == 3


# ----------------------------------------------------------------------------------------------- bad input
def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


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
def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src(text))
    return root


TRAIN_NET = """
    import torch
    from model import Net

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in data:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    """
MODEL = """
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3)
            self.fc = nn.Linear(8, 10)
    """


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
