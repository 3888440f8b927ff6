"""Old Keras 2 module paths (keras.layers.core, .normalization, .convolutional, ...) resolve to keras.layers
in the harness, only where the real module is missing; the script's own imports run unchanged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.repos import ROOT

FAKE_KERAS = {
    "keras/__init__.py": "",
    "keras/layers/__init__.py": "class Dense: pass\nclass BatchNormalization: pass\nclass Conv2D: pass\n",
    "keras/layers/core_real.py": "",
    "keras/layers/pooling/__init__.py": "REAL = True\n",  # a real module of that name: left alone
}
SCRIPT = """
    import sys
    from mlops_harness import legacy_paths
    legacy_paths.install()
    from keras.layers.core import Dense
    from keras.layers.normalization.batch_normalization import BatchNormalization
    import keras.layers.convolutional as conv
    import keras.layers.pooling
    import keras.layers as L
    assert Dense is L.Dense and BatchNormalization is L.BatchNormalization and conv.Conv2D is L.Conv2D
    assert keras.layers.pooling.REAL
    try:
        from keras.layers.core import NoSuchLayer
    except ImportError as e:
        print("missing:", e)
    try:
        import keras.layers.not_an_old_path
    except ModuleNotFoundError:
        print("unknown paths stay unknown")
"""


def test_old_layer_paths_alias_keras_layers(tmp_path: Path) -> None:
    for name, text in FAKE_KERAS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0]
        == "[mlops] note: keras.layers.core is an old Keras module path; the script gets an alias to keras.layers"
    )
    assert "cannot import name 'NoSuchLayer'" in lines[1]
    assert lines[2] == "unknown paths stay unknown"


MOVED_KERAS = {
    "keras/__init__.py": "",
    "keras/layers/__init__.py": "class Layer: pass\nclass InputSpec: pass\n",
    "keras/models/__init__.py": "class Model: pass\nclass Sequential(Model): pass\n",
    "keras/callbacks/__init__.py": "class Callback: pass\n",
    "keras/saving/__init__.py": "def get_custom_objects(): return {}\n",
    "keras/utils/__init__.py": (
        "def to_categorical(y): return y\n"
        "def plot_model(model, to_file='model.png'):\n"
        "    raise ImportError('You must install pydot (`pip install pydot`) for `plot_model` to work.')\n"
        "def model_to_dot(model): raise ImportError('graphviz is missing')\n"
    ),
}
MOVED_SCRIPT = """
    import sys
    from mlops_harness import compat, legacy_paths
    legacy_paths.install()
    import keras.utils
    compat.keras_utils(keras.utils)  # what the post-import hook of keras.utils does
    from keras.utils.vis_utils import plot_model
    from keras.utils.generic_utils import get_custom_objects
    from keras.engine.topology import Layer, InputSpec
    from keras.engine.training import Model
    from keras.engine import Sequential
    from keras.callbacks.callbacks import Callback
    import keras.models, keras.layers
    assert Layer is keras.layers.Layer and Model is keras.models.Model and Sequential is keras.models.Sequential
    assert get_custom_objects() == {} and Callback is keras.callbacks.Callback
    print("plot:", plot_model(object(), to_file="m.png"))
    plot_model(object())  # said once
    print("read as an attribute:", keras.utils.generic_utils.get_custom_objects is get_custom_objects)
    try:
        keras.utils.model_to_dot(object())
    except ImportError as e:
        print("only plot_model is quiet:", e)
    try:
        from keras.engine.topology import Network
    except ImportError as e:
        print("missing:", e)
    try:
        import keras.wrappers.scikit_learn
    except ModuleNotFoundError:
        print("keras.wrappers.scikit_learn is not aliased")
"""


def test_keras_2_module_paths_that_moved_alias_the_public_modules_each_said_once(tmp_path: Path) -> None:
    for name, text in MOVED_KERAS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MOVED_SCRIPT)],
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    notes = [line for line in lines if line.startswith("[mlops] note:")]
    assert notes == [
        "[mlops] note: keras.utils.vis_utils is an old Keras module path; the script gets an alias to keras.utils",
        "[mlops] note: keras.utils.generic_utils is an old Keras module path; the script gets an alias to "
        "keras.utils, keras.saving",
        "[mlops] note: keras.engine is an old Keras module path; the script gets an alias to keras.layers, "
        "keras.models",
        "[mlops] note: keras.engine.topology is an old Keras module path; the script gets an alias to "
        "keras.layers, keras.models",
        "[mlops] note: keras.engine.training is an old Keras module path; the script gets an alias to "
        "keras.models",
        "[mlops] note: keras.callbacks.callbacks is an old Keras module path; the script gets an alias to "
        "keras.callbacks",
        "[mlops] note: plot_model needs pydot and Graphviz, which this environment does not have: the picture "
        "of the model is skipped",
    ]
    rest = [line for line in lines if not line.startswith("[mlops]")]
    assert rest[0] == "plot: None"
    assert rest[1] == "read as an attribute: True"
    assert rest[2] == "only plot_model is quiet: graphviz is missing"
    assert (
        "cannot import name 'Network'" in rest[3] and "(<an alias of keras.layers, keras.models>)" in rest[3]
    )
    assert rest[4] == "keras.wrappers.scikit_learn is not aliased"


def test_a_script_that_uses_no_old_path_hears_of_none(tmp_path: Path) -> None:
    for name, text in MOVED_KERAS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    script = """
        from mlops_harness import compat, legacy_paths
        legacy_paths.install()
        import keras.utils
        compat.keras_utils(keras.utils)
        from keras.utils import to_categorical
        from keras.models import Model
        print("ok")
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ok"]
