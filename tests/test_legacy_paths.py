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
