"""Files of hyperparameters, one value a line, that a script reads (the classic setup's ``input.txt``, which
its tuning job rewrote between builds), tuned as mlops.yaml's ``tune_file:`` says.

Each named line is a coordinate of the search like the answer to an ``input()`` prompt (a
:class:`~tweak.prompts.Prompt` with its ``file``). Every trial gets its own copy of each file, with its values,
in ``trials/<n>/files/<i>/``; the trial's ``data:`` points the path the script reads at that copy (on every
runtime: a mount, or the rewritten path literal), and the file as pushed is never changed. The best trial's
copy is kept beside ``best.py`` as ``best.<file name>``.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from pathlib import Path

from mlops import trial_files
from mlops.errors import SourceError
from mlops.layout import RunLayout, TrialLayout
from mlops.project import DataPath, TunedFile, read_project
from mlops.runtime.base import TrialSpec
from mlops.trial_files import BadTrialFile
from mlops_harness.protocol import write_atomic
from tweak.prompts import Prompt

Values = dict[str, dict[int, str]]  # file (as mlops.yaml names it) -> line index -> value


def tuned_files(code_dir: Path) -> tuple[TunedFile, ...]:
    """The files of values that the repository's mlops.yaml declares tunable (checked before trial 0)."""
    try:
        return read_project(code_dir).tune_file
    except SourceError:
        return ()  # job 2 stopped the run on it already; a run resumed from an older ledger goes on without


def lines_as_prompts(files: tuple[TunedFile, ...]) -> list[Prompt]:
    """Each tuned line, as the strategies see a tunable prompt."""
    return [
        Prompt(index, name, file.lines[index].strip(), role, file=file.key)
        for file in files
        for index, name, role in file.roles()
    ]


def copy_of(trial_dir: Path, number: int, file: TunedFile) -> Path:
    """Where the trial keeps its copy of the ``number``-th tuned file."""
    return TrialLayout(trial_dir).file_copy(number, file.source)


def write_copies(trial_dir: Path, files: tuple[TunedFile, ...], values: Values) -> None:
    """The trial's copy of each file: as pushed, with ``values`` on their lines."""
    for number, file in enumerate(files):
        lines = list(file.lines)
        for index, value in values.get(file.key, {}).items():
            lines[index] = value
        write_atomic(copy_of(trial_dir, number, file), "\n".join(lines) + "\n")


def with_copies(spec: TrialSpec, files: tuple[TunedFile, ...]) -> TrialSpec:
    """The spec with the path the script reads each file from mapped to the trial's own copy."""
    data = list(spec.data)
    for number, file in enumerate(files):
        copy = copy_of(spec.trial_dir, number, file)
        target = file.target or _relative_to_script(file, spec.script)
        if target is None or not _own_copy(spec.trial_dir, copy):
            continue
        data = [entry for entry in data if entry.target != target]
        data.append(DataPath(target, str(copy)))  # after a folder that holds it: mounted over it
    return replace(spec, data=tuple(data)) if files else spec


def _own_copy(trial_dir: Path, copy: Path) -> bool:
    """The copy is there as mlops wrote it: a regular file, never a link a runtime would bind in its place
    (a runtime mounts the path it is given, and an engine resolves links on the host)."""
    try:
        return (
            trial_files.stat_regular(trial_dir, copy.relative_to(trial_dir).as_posix(), single=True)
            is not None
        )
    except BadTrialFile:
        return False


def _relative_to_script(file: TunedFile, script: str) -> str | None:
    """The path a script reads a file of the repository at, relative to its own folder (None: above it,
    which data: cannot map)."""
    if file.in_repo is None:
        return None
    path = posixpath.relpath(file.in_repo, posixpath.dirname(script) or ".")
    return None if path.startswith("..") else path


def keep_best(run_dir: Path, trial_dir: Path, files: tuple[TunedFile, ...]) -> list[Path]:
    """The best trial's copy of each file beside best.py, as ``best.<file name>``, read through the trial
    reader (BadTrialFile when the trial put something else in its place)."""
    kept = []
    for number, file in enumerate(files):
        copy = copy_of(trial_dir, number, file)
        text = trial_files.read_text(trial_dir, copy.relative_to(trial_dir).as_posix())  # BadTrialFile
        if text is not None:
            target = RunLayout(run_dir).best_copy(copy.name)
            write_atomic(target, text)
            kept.append(target)
    return kept
