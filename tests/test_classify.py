"""The classifier: a labelled corpus, the import forms it sees through, reasons, bad input and entry points
(the command's output is tests/test_views.py)."""

from __future__ import annotations

import json

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
    image_for,
)
from mlops.classify.facts import Facts, KeywordArg, MethodCall, Ref
from mlops.domain import Image, Kind
from tests.support.classify import CORPUS, LABELS, src
from tests.support.classify import notebook as _notebook


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
    assert corpus["glyphs_convnet_legacy.py"].image is Image.KERAS2
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
