"""Notebooks as scripts: code cells in order, IPython lines made harmless, line numbers meaningful."""

from __future__ import annotations

import ast
import json

import pytest

from mlops.errors import SourceError
from mlops.notebook import code_cells, notebook_to_script


def _nb(*cells: tuple[str, str]) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": kind, "source": text.splitlines(keepends=True), "metadata": {}}
                for kind, text in cells
            ],
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
        }
    )


def test_code_cells_joined_with_markers_and_markdown_dropped() -> None:
    script = notebook_to_script(
        _nb(("markdown", "# Title"), ("code", "a = 1"), ("code", "b = a + 1\nprint(b)"))
    )
    lines = script.splitlines()
    assert lines[0] == "# In[1]:"
    assert "# Title" not in script
    assert lines.index("b = a + 1") > lines.index("# In[2]:") > lines.index("a = 1")
    namespace: dict = {}
    exec(compile(script, "nb", "exec"), namespace)  # the script runs as plain Python
    assert namespace["b"] == 2


def test_magics_and_shell_lines_become_comments() -> None:
    script = notebook_to_script(
        _nb(
            ("code", "%matplotlib inline\n!pip install -q keras\nfiles = !ls\nx = 1\nx?"),
            ("code", "%%time\ny = x + 1"),
            ("code", "for i in range(2):\n    !echo $i\n    z = i"),
            ("code", "%%bash\nfor f in *.py; do\n  echo $f\ndone"),
            ("code", "%%writefile model.py\nfrom keras import layers\nm = layers.Dense(3)"),
        )
    )
    ast.parse(script)  # every IPython line is harmless now
    assert "# %matplotlib inline" in script
    assert "# !pip install -q keras" in script
    assert "# files = !ls" in script
    assert "# x?" in script
    assert "# %%time\ny = x + 1" in script
    assert "    pass  # !echo $i" in script
    assert "# for f in *.py; do\n#   echo $f" in script
    assert "# from keras import layers" in script  # a %%writefile body is not this notebook's code
    namespace: dict = {}
    exec(compile(script, "nb", "exec"), namespace)
    assert (namespace["y"], namespace["z"]) == (2, 1)


def test_line_count_matches_the_cells() -> None:
    cells = ["import os\n%cd /tmp\nx = 1", "y = 2\n\n\nz = 3"]
    script = notebook_to_script(_nb(*(("code", c) for c in cells)))
    body = [line for line in script.splitlines() if line and not line.startswith("# In[")]
    assert len(body) == sum(len([x for x in c.splitlines() if x]) for c in cells)


def test_nbformat3_worksheets() -> None:
    nb = {"worksheets": [{"cells": [{"cell_type": "code", "input": ["a = 1\n", "b = 2"]}]}], "nbformat": 3}
    assert code_cells(json.dumps(nb)) == ["a = 1\nb = 2"]


@pytest.mark.parametrize(
    ("text", "line"),
    [('{\n  "cells": [\n    {,\n', 3), ("[1, 2]", 1), ('{"cells": 3}', 1)],
)
def test_not_a_notebook_is_a_source_error_with_a_line(text: str, line: int) -> None:
    with pytest.raises(SourceError, match="not a notebook") as e:
        notebook_to_script(text)
    assert e.value.line == line
