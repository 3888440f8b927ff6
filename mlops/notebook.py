"""Jupyter notebooks as plain scripts: the code cells in order, IPython-only lines made harmless."""

from __future__ import annotations

import json
import re

from mlops.errors import SourceError

# Cell magics whose body is Python; the body of any other cell magic (%%bash, %%writefile) is not.
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
# `x = !ls`, `y = %timeit f()`: IPython assignments from shell commands and line magics.
_MAGIC_ASSIGN = re.compile(r"^\s*[\w., ()]+\s*=\s*[!%]")
# `obj?`, `obj??`, `?obj`: IPython help.
_HELP = re.compile(r"^\s*(\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")


def code_cells(text: str, where: str = "<notebook>") -> list[str]:
    """The source of each code cell, in order (nbformat 4, and the worksheets of nbformat 3)."""
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"not a notebook: invalid JSON ({e.msg})", where, e.lineno) from e
    if not isinstance(nb, dict):
        raise SourceError("not a notebook: the JSON is not an object", where, 1)
    cells = nb.get("cells")
    if cells is None:  # nbformat 3
        cells = [c for ws in nb.get("worksheets", []) or [] for c in ws.get("cells", []) or []]
    if not isinstance(cells, list):
        raise SourceError("not a notebook: 'cells' is not a list", where, 1)
    out = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))
        out.append("".join(map(str, source)) if isinstance(source, list) else str(source))
    return out


def _cell_to_script(source: str) -> list[str]:
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = lines[0].strip()
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic not in _PYTHON_CELL_MAGICS:  # the whole cell is shell, HTML, a file to write...
            return [f"# {line}" if line.strip() else line for line in lines]
        lines[0] = _comment(lines[0])
    out = []
    for line in lines:
        stripped = line.lstrip()
        ipython = (
            stripped.startswith(("%", "!"))
            or _MAGIC_ASSIGN.match(line) is not None
            or _HELP.match(line) is not None
        )
        out.append(_comment(line) if ipython else line)
    return out


def _comment(line: str) -> str:
    indent = line[: len(line) - len(line.lstrip())]
    body = line.strip()
    if not body:
        return line
    # An indented IPython line may be alone in its block: `pass` keeps the block valid.
    return f"{indent}pass  # {body}" if indent else f"# {body}"


def notebook_to_script(text: str) -> str:
    """The code cells of a notebook (its JSON text) joined into one script, as ``jupyter nbconvert`` does:
    each cell opens with a ``# In[N]:`` line, IPython magics and shell lines become comments, and every
    other line is kept as it is, so line numbers in the script point into a cell. Raises
    :class:`~mlops.errors.SourceError` when the text is not a notebook."""
    out: list[str] = []
    for n, source in enumerate(code_cells(text), start=1):
        out += ["", "", f"# In[{n}]:", ""]
        out += _cell_to_script(source)
    return "\n".join(out).lstrip("\n") + "\n"
