"""What the harness puts around habits of scripts written for their author's machine.

- ``input()``: the answers come from the trial's ``inputs.json`` (``inputs:`` in the pushed mlops.yaml,
  varied by the tuner where a prompt names a hyperparameter), echoed as a terminal would show them;
  standard input is closed, so a prompt beyond the answers fails at once, and the failure names it.
- Files written to absolute paths (``/root/accuracy.txt``, ``/newdir/o.txt``, the classic Jenkins setup's
  habit): when the folder does not exist or cannot be written here, the file goes into the trial's work
  folder instead (``work/_outside/<the path>``), said once per path, so a script that trained and measured
  does not die on its last line; what it wrote there is read like an accuracy file of its own.
"""

from __future__ import annotations

import builtins
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_harness.protocol import INPUTS_FILE, OUTSIDE_DIR, EventKind, read_json

WRITE_MODES = frozenset("wax+")
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
        self.outside = work_root / OUTSIDE_DIR
        self.say = say
        self.prompts: list[str] = []
        # Files the script wrote to absolute paths outside its folder: (the path it named, where the file is).
        self.written: list[tuple[str, Path]] = []
        self._open: Callable[..., Any] = builtins.open
        self._input: Callable[..., str] = builtins.input

    def install(self) -> None:
        builtins.open = self.open
        builtins.input = self.input

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
                shown = target.relative_to(self.work_root)
                self.say(f"note: {path} cannot be written here; the script writes it to work/{shown} instead")
                self.written.append((str(path), target))
            return self._open(target, mode, *args, **kwargs)
        if (str(path), path) not in self.written:
            self.written.append((str(path), path))
        return handle
