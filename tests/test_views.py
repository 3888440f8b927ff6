"""What `mlops classify` prints: JSON lines, an aligned table, a rich table on a terminal, and its exit code."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TextIO

import pytest

from jobs.views import print_classifications
from mlops.classify import classify_paths
from tests.support.classify import CORPUS, MODEL, TRAIN_NET
from tests.support.classify import tree as _tree
from tests.support.classify import write as _write


def command(paths: list[str], as_json: bool, out: TextIO) -> int:
    """What `mlops classify [--json] PATH...` runs (jobs/cli.py's cmd_classify)."""
    return print_classifications(classify_paths(paths), as_json, out)


def test_command_json_one_object_per_line(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "repo/train.py": TRAIN_NET,
            "repo/model.py": MODEL,
            "k.py": "from sklearn.cluster import KMeans\nKMeans(2).fit(X)\n",
        },
    )
    out = io.StringIO()
    code = command([str(root / "repo"), str(root / "k.py")], as_json=True, out=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 0
    assert [(Path(r["path"]).name, r["kind"], r["image"]) for r in rows] == [
        ("train.py", "cnn", "mlops-pytorch"),
        ("k.py", "kmeans", "mlops-sklearn"),
    ]


def test_command_fails_when_a_file_fails(tmp_path: Path) -> None:
    bad = _write(tmp_path, "old.py", b'print "x"\n')
    out = io.StringIO()
    assert command([str(bad), str(tmp_path / "missing.py")], as_json=True, out=out) == 1
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0]["line"] == 1 and "error" in rows[0]
    assert rows[1]["error"] == "no such file or directory"


def test_command_plain_table_is_aligned(tmp_path: Path) -> None:
    good = _write(tmp_path, "net.py", b"from keras.layers import Conv2D\nConv2D(3, 3)\n")
    out = io.StringIO()
    assert command([str(good), str(CORPUS / "cnn.py")], as_json=False, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:7] == ["PATH", "KIND", "FAMILY", "FRAMEWORK", "API", "IMAGE", "CONF"]
    assert lines[0].index("KIND") == lines[1].index("cnn") == lines[2].index("ann")
    assert "line 2: keras.layers.Conv2D" in lines[1]


def test_command_on_a_directory_without_entry_points_fails(tmp_path: Path) -> None:
    _write(tmp_path, "utils.py", b"x = 1\n")
    out = io.StringIO()
    assert command([str(tmp_path)], as_json=False, out=out) == 1
    assert "no training entry point" in out.getvalue()


def test_command_uses_rich_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    good = _write(tmp_path, "net.py", b"from keras.layers import Conv2D\nConv2D(3, 3)\n")
    monkeypatch.setenv("COLUMNS", "160")
    out = Terminal()
    assert command([str(good)], as_json=False, out=out) == 0
    text = out.getvalue()
    assert "┃" in text or "│" in text  # a rich table, not the plain one
    assert "cnn" in text and "mlops-keras3" in text
