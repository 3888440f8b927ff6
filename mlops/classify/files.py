"""Reading what was pushed: bytes to text (encodings, notebooks, size limits, binary files), the facts of a
text, and the facts of the local modules a script imports merged into its own. :func:`classify_file` and
:func:`classify_source` never raise for bad input: the :class:`~mlops.classify.rules.Classification` carries
the error.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import replace
from pathlib import Path

from mlops.classify.facts import Facts, Ref, gather, gather_tokens
from mlops.classify.legacy_names import KERAS2_METHODS
from mlops.classify.rules import (
    Api,
    Classification,
    Family,
    Framework,
    Reason,
    decide,
    evidence_of,
)
from mlops.domain import Image, Kind
from mlops.errors import SourceError
from mlops.notebook import notebook_to_script

# Past this a "script" is data (parsing 10 MB would take half a minute). A notebook's outputs (plots) make
# it big, so a notebook may be larger and its code cells alone count.
MAX_SOURCE_BYTES = 1024 * 1024
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def decode(data: bytes) -> tuple[str, str | None]:
    """Bytes to text: BOM or PEP 263 coding cookie, else UTF-8, else latin-1 (which never fails).
    Returns the text and a note when a fallback was needed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 byte order mark (Windows editors)
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError:
            return data.decode("latin-1"), "not valid UTF-16: read as latin-1"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # an unknown codec named in the cookie
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return data.decode("latin-1"), f"not valid {encoding}: read as latin-1"
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None


def facts_of(text: str, where: str) -> Facts:
    """The facts of Python source text: from its syntax tree, else (it does not parse) from its tokens."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        tree = ast.parse(text, filename=where)
        return gather(tree)
    except SyntaxError as e:  # IndentationError and TabError too
        line = e.lineno
        got = (e.text or "").strip()
        message = f"line {line}: {e.msg}" + (f": {got[:60]}" if got else "")
        return gather_tokens(text, message, line)
    except (RecursionError, MemoryError, ValueError) as e:
        return gather_tokens(text, f"the syntax tree cannot be built ({type(e).__name__})", None)


def failed(path: str, message: str, line: int | None = None) -> Classification:
    """The classification of a file that could not be classified, with why."""
    return Classification(
        path=path,
        kind=Kind.OTHER,
        family=str(Family.NONE),
        framework=str(Framework.NONE),
        api=str(Api.NONE),
        image=Image.SKLEARN,
        reasons=(),
        confidence=0.0,
        error=message,
        error_line=line,
    )


def source_text(data: bytes, path: str) -> tuple[str, str | None]:
    """The Python text of a file's bytes (a notebook's code cells joined) and a note when the encoding
    had to be guessed. Raises SourceError for a binary file, a broken notebook, too much code."""
    notebook = path.endswith(".ipynb")
    limit = MAX_NOTEBOOK_BYTES if notebook else MAX_SOURCE_BYTES
    if len(data) > limit:
        raise SourceError(_too_large(len(data), limit), path)
    nul = data.find(b"\x00")
    if nul >= 0 and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError("binary file, not source code (NUL byte)", path, data.count(b"\n", 0, nul) + 1)
    note = None
    if notebook:
        text = notebook_to_script(_notebook_or_raise(data.decode("utf-8", errors="replace"), path))
    else:
        text, note = decode(data)
    if len(text) > MAX_SOURCE_BYTES:
        raise SourceError(_too_large(len(text), MAX_SOURCE_BYTES), path)
    return text, note


def _too_large(size: int, limit: int) -> str:
    return f"too large for a training script: {size / 1e6:.1f} MB of code (the limit is {limit / 1e6:.1f} MB)"


def _notebook_or_raise(text: str, path: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"not a notebook: invalid JSON ({e.msg})", path, e.lineno) from e
    return text


def classify_source(text: str, path: str = "<string>") -> Classification:
    """Classify Python source text (or a notebook's JSON when ``path`` ends in .ipynb). Never raises."""
    try:
        if path.endswith(".ipynb"):
            text = notebook_to_script(_notebook_or_raise(text, path))
        if len(text) > MAX_SOURCE_BYTES:
            raise SourceError(_too_large(len(text), MAX_SOURCE_BYTES), path)
        if not text.strip():
            return replace(decide(Facts(), path), reasons=(Reason(0, "the file is empty"),))
        return decide(facts_of(text, path), path)
    except SourceError as e:
        return failed(path, e.reason, e.line)


def classify_file(path: Path | str, root: Path | str | None = None) -> Classification:
    """Classify one file, following the local modules it imports (looked up next to the file, then in
    ``root``, the file's folder by default). Never raises for bad input: the result carries the error."""
    path = Path(path)
    shown = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return failed(shown, f"cannot read: {e.strerror or e}")
    try:
        text, note = source_text(data, shown)
    except SourceError as e:
        return failed(shown, e.reason, e.line)
    if not text.strip():
        return replace(decide(Facts(), shown), reasons=(Reason(0, "the file is empty"),))
    facts = facts_of(text, shown)
    base = Path(root) if root is not None else path.parent
    follow(facts, path, base, seen={path.resolve()}, depth=0)
    result = decide(facts, shown)
    if note:
        result = replace(result, reasons=(*result.reasons, Reason(0, note)))
    return result


# ------------------------------------------------------------------------------------------ local modules
MAX_FOLLOW_DEPTH = 3


def _local_module(module: str, level: int, importer: Path, root: Path) -> Path | None:
    if level:
        base = importer.parent
        for _ in range(level - 1):
            base = base.parent
        bases = [base]
    else:
        bases = [importer.parent, root]
    rel = Path(*module.split(".")) if module else Path()
    for b in bases:
        for candidate in (b / rel.with_suffix(".py") if module else None, b / rel / "__init__.py"):
            if candidate is not None and candidate.is_file():
                return candidate
    return None


def _through_star(facts: Facts, module: str, sub: Facts, shown: str) -> None:
    """``from module import *`` of a local module: the names the file uses from it (``module.Conv2D`` as the
    file's facts hold them) resolved through what that module imports (``keras.layers.Conv2D``)."""
    prefix = f"{module}."
    for ref in list(facts.refs):
        if not ref.name.startswith(prefix):
            continue
        parts = ref.name[len(prefix) :].split(".")
        root = parts[0]
        targets = [".".join([sub.bound[root], *parts[1:]])] if root in sub.bound else []
        targets += [".".join([star, *parts]) for star in sub.stars] if not targets else []
        for target in targets:
            facts.refs.append(Ref(target, ref.line, ref.called, f"through {shown}"))


def follow(facts: Facts, importer: Path, root: Path, seen: set[Path], depth: int = 0) -> None:
    """Merge into ``facts`` the model evidence of the local modules the file imports, each use marked with
    where it was found and attached to the importing line."""
    if depth >= MAX_FOLLOW_DEPTH:
        return
    for imp in list(facts.imports):
        targets = [imp.module] if imp.module else []
        if not imp.module or imp.level:  # `from . import net` names modules too
            targets += [f"{imp.module}.{n}" if imp.module else n for n in imp.names if n != "*"]
        for module in targets:
            found = _local_module(module, imp.level, importer, root)
            if found is None or found.resolve() in seen:
                continue
            seen.add(found.resolve())
            try:
                text, _ = source_text(found.read_bytes(), str(found))
            except (OSError, SourceError):
                continue
            sub = facts_of(text, str(found))
            follow(sub, found, root, seen, depth + 1)
            try:
                shown = found.relative_to(root)
            except ValueError:
                shown = Path(found.name)
            facts.followed.append(str(shown))
            for ref in sub.refs:
                if evidence_of(ref) is None:
                    continue
                origin = ref.origin or f"{shown.as_posix()}:{ref.line}"
                facts.refs.append(Ref(ref.name, imp.line, ref.called, origin))
            if imp.names == ("*",):
                _through_star(facts, module, sub, shown.as_posix())
            facts.methods += [m._replace(line=imp.line) for m in sub.methods if m.name in KERAS2_METHODS]
