"""A plain PyTorch training as the hooks see it: its passes over a ``DataLoader``, its epochs, their events,
checkpoints and early stop, and its resume after a kill.

- A **pass** is one iteration of a ``DataLoader``; it **trains** when ``backward()`` is called during it.
- An **epoch** is one item of the script's epoch loop (torch_loops.py: the innermost ``for`` over a count
  around the line that iterates the training ``DataLoader``), or, when there is no such loop (a ``while``
  loop, epochs in a library), one training pass. Its ``loss`` is the mean of the losses ``backward()`` was
  called on; its ``val_accuracy`` is the last accuracy the script measured after its last training pass
  (a printed line, a torchmetrics metric, ``accuracy_score``).
- At each epoch's end the state is saved (torch_checkpoints.py); a training restarted after a kill skips
  the finished epochs' items of the epoch loop and restores that state before the next one begins.
- A stop (``MLOPS_STOP_AT``, ``MLOPS_PATIENCE``; the orchestrator sets neither for trial 0) ends the trial
  once the epoch's validation accuracy is recorded: :class:`~mlops_harness.torch_loops.TrialEnded`, which the
  runner takes as the end of a script that succeeded. The script never sees a fit cut short.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_harness import torch_checkpoints as ckpt
from mlops_harness import torch_loops
from mlops_harness.protocol import CHECKPOINT_DIR, ENV_CHECKPOINTS, ENV_PATIENCE, ENV_STOP_AT, StopReason
from mlops_harness.recorder import Recorder, say

VAL_NAMES = ("accuracy", "printed_test_accuracy", "printed_accuracy")  # an epoch's own evaluation
MIN_GAP_S = 0.4  # as Keras's checkpoints: an epoch that ends sooner after the last one is not saved again


@dataclass
class Pass:
    """One iteration of a DataLoader, from ``iter()`` to its end."""

    iterator: weakref.ref[Any]
    loader: weakref.ref[Any]
    stack: tuple[tuple[str, int], ...]  # the user's frames (real path, line) that started it, innermost first
    train: bool = False
    done: bool = False
    steps: int = 0
    loss: Any = None  # the sum of the scalar losses backward() was called on (a tensor: no sync per step)
    counted: int = 0

    def add(self, tensor: Any) -> None:
        self.steps += 1
        if tensor.numel() == 1:
            value = tensor.detach().float().reshape(())
            self.loss = value if self.loss is None else self.loss + value
            self.counted += 1


@dataclass
class Stop:
    """What may end a training early, from the trial's settings (none for trial 0)."""

    stop_at: float | None = field(default_factory=lambda: _float(os.environ.get(ENV_STOP_AT)))
    patience: int = field(default_factory=lambda: int(os.environ.get(ENV_PATIENCE, "0") or 0))
    best: float | None = None
    best_epoch: int = 0
    best_source: str = ""
    best_state: dict[str, Any] | None = None


def _float(text: str | None) -> float | None:
    return float(text) if text else None


class Training(torch_loops.Watcher):
    """The plain training loop of the script (one per process: the first DataLoader it trains on)."""

    def __init__(self, rec: Recorder, out: Path) -> None:
        self.rec = rec
        self.made = ckpt.Made()
        self.folder = ckpt.Folder(out / CHECKPOINT_DIR / "torch")
        self.checkpoints = os.environ.get(ENV_CHECKPOINTS, "1") != "0"
        self.lock = threading.RLock()
        self.passes: list[Pass] = []
        self.training_loaders: weakref.WeakSet[Any] = weakref.WeakSet()
        self.fit: int | None = None
        self.loop: torch_loops.Loop | None = None  # the epoch loop, once known
        self.epochs = 0  # finished
        self.losses: list[tuple[Any, int]] = []  # this epoch's passes: (loss sum, steps counted)
        self.trained = False  # a training pass ended since the last epoch's end
        self.mark = 0  # observations before this index were made before this epoch's last training pass ended
        self.last_saved: float | None = None
        self.saved = 0  # the epoch of the last checkpoint written
        self.in_lightning = 0  # Lightning's Trainer runs its own loop: its hooks say what it does
        self.resume = self.folder.newest(say) if self.checkpoints else None
        self.stop = Stop()
        self.work_root = rec.work_root + os.sep

    # -- passes ------------------------------------------------------------------------------------

    def user_stack(self) -> tuple[tuple[str, int], ...]:
        frames: list[tuple[str, int]] = []
        frame: Any = sys._getframe(2)
        while frame is not None and len(frames) < 32:
            path = os.path.realpath(frame.f_code.co_filename)
            if path.startswith(self.work_root):
                frames.append((path, frame.f_lineno))
            frame = frame.f_back
        return tuple(frames)

    def pass_started(self, loader: Any, iterator: Any) -> None:
        """``iter(loader)`` returned ``iterator``: a pass begins (an epoch ends first, without a loop)."""
        with self.lock:
            if self.loop is None and self.trained and loader in self.training_loaders:
                self.epoch_ended(final=False)
            self.passes = [p for p in self.passes if not p.done and p.iterator() is not None]
            current = Pass(weakref.ref(iterator), weakref.ref(loader), self.user_stack())
            self.passes.append(current)
        iterator._mlops_pass = current

    def active(self) -> Pass | None:
        for current in reversed(self.passes):
            if not current.done and current.iterator() is not None:
                return current
        return None

    def training_now(self) -> bool:
        current = self.active()
        return current is not None and current.train

    def backward(self, tensor: Any) -> None:
        if self.in_lightning:
            return
        with self.lock:
            current = self.active()
            if current is None:
                return
            if not current.train:
                current.train = True
                loader = current.loader()
                if self.fit is None:
                    self.begin(current)
                if loader is not None and loader not in self.training_loaders:
                    self.training_loaders.add(loader)
                    self.rec.fit_inputs(int(self.fit or 0), dataset_inputs(loader))
            current.add(tensor)

    def begin(self, first: Pass) -> None:
        """The script's first training pass: its training is number ``fit``; find its epoch loop."""
        self.fit = self.rec.fit_calls
        self.rec.fit_calls += 1
        site = torch_loops.REGISTRY.enclosing(first.stack)
        running = torch_loops.REGISTRY.latest.get(site.key) if site is not None else None
        if running is not None and not running.done and self.loop is None:
            self.loop = running
            return
        if self.checkpoints:
            say("note: no epoch loop (a for over range(...)) around the training's DataLoader: an epoch is a pass "
                "over it, and a killed training starts from the beginning")  # fmt: skip

    def pass_ended(self, current: Pass) -> None:
        with self.lock:
            current.done = True
            if not current.train:
                return
            self.losses.append((current.loss, current.counted))
            self.trained = True
            self.mark = len(self.rec.observations)

    # -- epochs --------------------------------------------------------------------------------------

    def started(self, loop: torch_loops.Loop) -> None:
        state = self.resume
        if state is not None and loop.key == state.get("loop") and loop.instance == state.get("instance"):
            loop.resume_state = state

    def next_item(self, loop: torch_loops.Loop) -> None:
        if loop is self.loop and loop.index > 0:
            self.epoch_ended(final=loop.total is not None and loop.index >= loop.total)
        elif loop.index == 0 and loop.resume_state is not None:
            self.resumed(loop, loop.resume_state)

    def ended(self, loop: torch_loops.Loop) -> None:
        if loop is not self.loop:
            return
        if self.trained:
            self.epoch_ended(final=True)
        elif self.saved != self.epochs:  # its last epoch ended at its last item, too soon to be saved
            self.save(final=True)

    def finish(self) -> None:
        """The script ended: an epoch trained since the last one's end is one more (no stop now)."""
        with self.lock:
            if self.trained:
                self.epoch_ended(final=True)

    def epoch_ended(self, final: bool) -> None:
        with self.lock:
            if not self.trained or self.fit is None:
                return
            self.epochs += 1
            logs, source = self.epoch_logs()
            total = self.loop.total if self.loop is not None else None
            self.rec.epoch(self.fit, self.epochs, total, logs)
            self.losses, self.trained = [], False
            if self.loop is not None:
                self.save(final)
        if not final:
            self.check_stop(logs, source, total)

    def epoch_logs(self) -> tuple[dict[str, Any], str]:
        logs: dict[str, Any] = {}
        counted = sum(n for _, n in self.losses)
        if counted:
            logs["loss"] = float(sum(float(s) for s, n in self.losses if n)) / counted
        later = [o for o in self.rec.observations[self.mark :] if o["name"] in VAL_NAMES]
        if later:
            logs["val_accuracy"] = later[-1]["value"]
            return logs, str(later[-1]["source"])
        return logs, ""

    def save(self, final: bool) -> None:
        if not self.checkpoints or self.loop is None:
            return
        recent = self.last_saved is not None and time.monotonic() - self.last_saved < MIN_GAP_S
        if recent and not final:
            return
        where = {"loop": self.loop.key, "instance": self.loop.instance, "epoch": self.epochs, "fit": self.fit}
        name = self.folder.write(ckpt.capture(self.made, where), say)
        if name is not None:
            self.last_saved, self.saved = time.monotonic(), self.epochs
            self.rec.checkpoint(int(self.fit or 0), self.epochs, 0, name)

    def resumed(self, loop: torch_loops.Loop, state: dict[str, Any]) -> None:
        """The first item of the epoch loop a checkpoint was saved in: skip the finished epochs, restore."""
        loop.resume_state = None
        self.resume = None
        epoch = int(state["epoch"])
        unfit = ckpt.unfit(self.made, state)
        if unfit:
            say(f"the checkpoint of epoch {epoch} cannot be put back when its epoch loop starts ("
                f"{', '.join(unfit[:4])}); training starts from the beginning")  # fmt: skip
            return
        taken = loop.skip(epoch)
        ckpt.restore(self.made, state)
        self.loop, self.fit, self.epochs = loop, int(state.get("fit") or 0), taken
        self.rec.fit_calls = max(self.rec.fit_calls, self.fit + 1)
        self.rec.resume(self.fit, taken)

    # -- early stop ----------------------------------------------------------------------------------

    def check_stop(self, logs: dict[str, Any], source: str, total: int | None) -> None:
        value = logs.get("val_accuracy")
        rule = self.stop
        if value is None or (rule.stop_at is None and rule.patience <= 0):
            return
        if total is not None and self.epochs >= total:
            return  # it was the last epoch anyway
        if rule.best is None or value > rule.best:
            rule.best, rule.best_epoch, rule.best_source = value, self.epochs, source
            if rule.patience > 0:
                rule.best_state = {n: _copy(m.state_dict()) for n, m in self.made.named("modules").items()}
        if rule.stop_at is not None and value >= rule.stop_at:
            self.end(StopReason.TARGET, value, self.epochs, source)
        if rule.patience > 0 and self.epochs - rule.best_epoch >= rule.patience:
            for name, module in self.made.named("modules").items():
                if rule.best_state and name in rule.best_state:
                    module.load_state_dict(rule.best_state[name])
            self.end(StopReason.PATIENCE, rule.best or 0.0, rule.best_epoch, rule.best_source)

    def end(self, why: StopReason, value: float, best_epoch: int, source: str) -> None:
        """Stop the training here: its metric is the epoch's own evaluation; the trial ends well."""
        fit = int(self.fit or 0)
        self.rec.stop(fit, self.epochs, why, "val_accuracy", value, self.stop.patience, best_epoch)
        where = (
            "there" if best_epoch == self.epochs else f"at epoch {self.epochs}, with the weights of this one"
        )
        self.rec.observe("accuracy", value, f"{source} (epoch {best_epoch}; the training stopped {where})")
        raise torch_loops.TrialEnded(f"stopped at epoch {self.epochs}: {why.value}")


def dataset_inputs(loader: Any) -> Any:
    """The inputs of a training ``DataLoader`` over a ``TensorDataset``, as a numpy array (the tuner's
    evidence of unscaled pixels); None for any other dataset (reading it would run the script's code)."""
    tensors = getattr(getattr(loader, "dataset", None), "tensors", None)
    if not isinstance(tensors, tuple) or not tensors or not hasattr(tensors[0], "detach"):
        return None
    try:
        return tensors[0].detach().cpu().numpy()
    except Exception:  # noqa: BLE001 (a tensor numpy cannot hold, bfloat16: no evidence)
        return None


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().clone() if hasattr(v, "detach") else v for k, v in state.items()}
