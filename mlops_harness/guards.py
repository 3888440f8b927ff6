"""What the harness puts around habits of scripts written for their author's machine.

- ``input()``: the answers come from the trial's ``inputs.json`` (``inputs:`` in the pushed mlops.yaml,
  varied by the tuner where a prompt names a hyperparameter), echoed as a terminal would show them;
  standard input is closed, so a prompt beyond the answers fails at once, and the failure names it.
- Folders of the author's machine (``/DLCode``, ``/content/drive``): a runtime that mounts (the sandbox,
  Docker) makes the ones the script names exist, mounted from the trial's ``outside/`` folder, so a write
  through any library (h5py, TensorFlow's file system, numpy, joblib) lands there; the runtime names them
  in ``MLOPS_AUTHOR_FOLDERS``. A ``mkdir`` of one of them is then a no-op, as it succeeded on the author's
  machine; the files written in them are read like an accuracy file of the script's own.
- Files written with Python's ``open`` to absolute paths (``/root/accuracy.txt``, ``/newdir/o.txt``, the
  classic Jenkins setup's habit) that cannot be written here (no runtime made the folder: unsandboxed, Ray;
  or the folder exists on this machine, which no mount hides): the file goes into the trial's ``outside/``
  folder instead (``outside/<the path>``), said once per path, so a script that trained and measured does
  not die on its last line; what it wrote there is read like an accuracy file of its own.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_harness.protocol import ENV_AUTHOR_FOLDERS, INPUTS_FILE, OUTSIDE_DIR, EventKind, read_json

WRITE_MODES = frozenset("wax+")
FOUND_FILES = 200  # files looked at in the author's folders after the script, for an accuracy it wrote
# Never redirected: the system, and the checkout (read-only on purpose: a write there fails as it should).
SYSTEM = tuple(
    Path(p)
    for p in (
        "/usr",
        "/etc",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/sys",
        "/proc",
        "/boot",
        "/run",
        "/var",
        "/opt",
    )
)


class Guards:
    def __init__(
        self,
        trial_dir: Path,
        work_root: Path,
        say: Callable[[str], None],
        event: Callable[..., None] = lambda *a, **k: None,
        code_dir: Path | None = None,
    ) -> None:
        self.trial_dir = trial_dir
        self.kept = (*SYSTEM, code_dir) if code_dir is not None else SYSTEM
        self.event = event
        answers = (read_json(trial_dir / INPUTS_FILE) or {}).get("answers")
        self.answers: list[str] = [str(a) for a in answers] if isinstance(answers, list) else []
        self.work_root = work_root
        self.outside = trial_dir / OUTSIDE_DIR
        self.say = say
        self.prompts: list[str] = []
        # Files the script wrote to absolute paths outside its folder: (the path it named, where the file is).
        self.written: list[tuple[str, Path]] = []
        self.author_folders = author_folders(os.environ.get(ENV_AUTHOR_FOLDERS))
        self._open: Callable[..., Any] = builtins.open
        self._input: Callable[..., str] = builtins.input
        self._mkdir: Callable[..., None] = os.mkdir

    def install(self) -> None:
        builtins.open = self.open
        io.open = self.open  # numpy's savetxt, and code that says io.open
        builtins.input = self.input
        if self.author_folders:
            os.mkdir = self.mkdir  # os.makedirs and pathlib's mkdir call it too

    def mkdir(self, path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        """``os.mkdir``; a folder of the author's machine that mlops made for the trial is there already,
        as if the script had made it (on the author's machine it did not exist, or the script checked)."""
        try:
            self._mkdir(path, mode, dir_fd=dir_fd)
        except FileExistsError:
            if dir_fd is not None or not isinstance(path, str | os.PathLike):
                raise
            if Path(os.path.abspath(os.fsdecode(path))) not in self.author_folders:
                raise

    def written_files(self) -> list[tuple[str, Path]]:
        """Every file the script wrote outside its folder, (the path it named, where it is), oldest first:
        those it opened with Python's ``open``, and those it wrote in the author's folders mlops made (any
        library: numpy, TensorFlow, h5py), whose paths are the ones it named."""
        files = dict((path, named) for named, path in self.written)
        for top in self.author_folders:
            if not any(top.is_relative_to(p) for p in self.author_folders if p != top):
                files.update({path: str(path) for path in _files_in(top) if path not in files})
        return sorted(((named, path) for path, named in files.items()), key=lambda f: _mtime(f[1]))

    def input(self, prompt: object = "") -> str:
        index = len(self.prompts)
        self.prompts.append(str(prompt))
        if index < len(self.answers):
            answer = self.answers[index]
            sys.stdout.write(f"{prompt}{answer}\n")  # as a terminal shows a typed answer
            self.event(EventKind.INPUT, index=index, prompt=str(prompt), answer=answer)
            return answer
        self.event(EventKind.INPUT, index=index, prompt=str(prompt), answer=None)
        return self._input(prompt)

    def _ours(self, path: Path) -> bool:
        bases = (self.trial_dir, Path(tempfile.gettempdir()), Path("/dev"), Path("/proc"))
        return any(path.is_relative_to(base) for base in bases)

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if not isinstance(file, str | os.PathLike) or not WRITE_MODES & set(mode):
            return self._open(file, mode, *args, **kwargs)
        path = Path(os.path.abspath(os.fsdecode(file)))
        if not Path(os.fsdecode(file)).is_absolute() or self._ours(path):
            return self._open(file, mode, *args, **kwargs)
        if any(path.is_relative_to(base) for base in self.kept):
            return self._open(file, mode, *args, **kwargs)
        try:
            handle = self._open(file, mode, *args, **kwargs)
        except OSError:
            target = self.outside / path.relative_to(path.anchor)
            target.parent.mkdir(parents=True, exist_ok=True)
            if (str(path), target) not in self.written:
                shown = target.relative_to(self.trial_dir)
                self.say(
                    f"note: {path} cannot be written here; the script writes it to {shown} in its trial folder"
                )
                self.written.append((str(path), target))
            return self._open(target, mode, *args, **kwargs)
        if (str(path), path) not in self.written:
            self.written.append((str(path), path))
        return handle


def author_folders(value: str | None) -> frozenset[Path]:
    """The folders of ``MLOPS_AUTHOR_FOLDERS`` (a JSON list of absolute paths); none when it is unset or
    not such a list."""
    try:
        listed = json.loads(value) if value else []
    except ValueError:
        return frozenset()
    if not isinstance(listed, list):
        return frozenset()
    return frozenset(Path(p) for p in listed if isinstance(p, str) and os.path.isabs(p))


def _files_in(top: Path) -> list[Path]:
    """Regular files under ``top``, links not followed, at most FOUND_FILES."""
    found: list[Path] = []
    for root, _, names in os.walk(top):
        for name in names:
            path = Path(root) / name
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    found.append(path)
            except OSError:
                continue
            if len(found) >= FOUND_FILES:
                return found
    return found


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
