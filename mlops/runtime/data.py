"""The ``data:`` of a trial, as each runtime gives it to the script.

A runtime that mounts (Docker, the bubblewrap sandbox) puts each folder at the very path the script uses;
one that cannot (``--unsandboxed``, Ray) runs a copy of the trial's source whose path literals are rewritten
to the folders here, with LibCST. A relative path the script uses (``data/train.csv``) is rewritten in
every runtime: a mounting runtime puts its folder at ``/mlops-data/<n>``. The rewritten copy sits beside the
trial's source (``source.data.py``) and ``data_rewrites.json`` says what changed, on which line; the
variant itself (``source.py``, from which the tweaks, ``best.py`` and its diff are made) is left as it is,
so a rewrite is never shown as a tuning change.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import replace
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from mlops import trial_files
from mlops.layout import TrialLayout, data_copy
from mlops.project import RELATIVE_MOUNTS, DataPath
from mlops.runtime.base import TrialSpec
from mlops.trial_files import BadTrialFile, inputs_of
from mlops_harness.protocol import write_atomic


def mount_point(entry: DataPath, index: int) -> str:
    """Where a mounting runtime puts the entry: the script's own path, or one of ours for a relative one."""
    return f"{RELATIVE_MOUNTS}/{index}" if entry.relative else entry.target


def mounts(spec: TrialSpec) -> list[tuple[Path, str, bool]]:
    """(the folder here, where the trial sees it, writable) of each entry, for a runtime that mounts."""
    return [(Path(d.source), mount_point(d, i), d.writable) for i, d in enumerate(spec.data)]


def _replaced(value: str, mapping: dict[str, str]) -> str | None:
    """``value`` with its leading mapped path replaced, or None when it starts with none of them."""
    plain = value[2:] if value.startswith("./") else value
    for key in sorted(mapping, key=len, reverse=True):  # the longest (innermost) path first
        text = value if key.startswith("/") else plain
        if text == key or text.startswith(key.rstrip("/") + "/"):
            return mapping[key] + text[len(key.rstrip("/")) :]
    return None


class _Rewrite(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, mapping: dict[str, str]) -> None:
        super().__init__()
        self.mapping = mapping
        self.done: list[dict[str, object]] = []

    def _line(self, node: cst.CSTNode) -> int:
        return int(self.get_metadata(PositionProvider, node).start.line)

    def leave_SimpleString(
        self, original_node: cst.SimpleString, updated_node: cst.SimpleString
    ) -> cst.BaseExpression:
        value = original_node.evaluated_value
        if not isinstance(value, str):  # bytes
            return updated_node
        new = _replaced(value, self.mapping)
        if new is None:
            return updated_node
        self.done.append({"line": self._line(original_node), "was": value, "now": new})
        return cst.SimpleString(repr(new))

    def leave_FormattedString(
        self, original_node: cst.FormattedString, updated_node: cst.FormattedString
    ) -> cst.BaseExpression:
        parts = list(updated_node.parts)
        first = parts[0] if parts else None
        if not isinstance(first, cst.FormattedStringText) or "\\" in first.value or "{" in first.value:
            return updated_node
        new = _replaced(first.value, self.mapping)
        if new is None or "{" in new or "\\" in new or updated_node.start[-1:] in new:
            return updated_node
        self.done.append({"line": self._line(original_node), "was": first.value, "now": new})
        return updated_node.with_changes(parts=[first.with_changes(value=new), *parts[1:]])


def rewrite_paths(source: str, mapping: dict[str, str]) -> tuple[str, list[dict[str, object]]]:
    """``source`` with every string literal that is, or starts with, a key of ``mapping`` (a path the
    script uses) starting with its value instead; and what was rewritten (line, was, now)."""
    if not mapping:
        return source, []
    wrapper = MetadataWrapper(cst.parse_module(source))
    rewrite = _Rewrite({posixpath.normpath(k): v for k, v in mapping.items()})
    return wrapper.visit(rewrite).code, rewrite.done


def input_mounts(spec: TrialSpec, at: str) -> list[tuple[Path, str, bool]]:
    """What mlops wrote in the trial's folder for it (its source, params, answers, copies of files of values),
    each mounted read-only over the folder, which the runtime shows at ``at``: the training reads them, never
    changes them (nor puts a link in their place)."""
    folder = spec.trial_dir.resolve()
    source = folder / spec.source_file.relative_to(spec.trial_dir)
    return [(p, f"{at}/{p.relative_to(folder).as_posix()}", False) for p in inputs_of(folder, source)]


def with_data(spec: TrialSpec, mounted: bool) -> TrialSpec:
    """The spec to launch: with a rewritten copy of its source when some path of ``data:`` is not mounted
    at the place the script names (``mounted``: the runtime mounts the absolute ones there)."""
    if not spec.data:
        return spec
    mapping = {
        d.target: mount_point(d, i) if mounted else d.source
        for i, d in enumerate(spec.data)
        if d.relative or not mounted
    }
    if not mapping:
        return spec
    try:
        source = trial_files.read_text(spec.source_file.parent, spec.source_file.name)
        text, done = rewrite_paths(source or "", mapping)
    except (cst.ParserSyntaxError, BadTrialFile):
        return spec  # the trial runs as it is and fails on its own syntax (or its source), said then
    record = {"mapped": mapping, "rewritten": done}
    write_atomic(TrialLayout(spec.trial_dir).rewrites, json.dumps(record, indent=1))
    if not done:
        return spec
    copy = data_copy(spec.source_file)
    write_atomic(copy, text)
    return replace(spec, source_file=copy)
