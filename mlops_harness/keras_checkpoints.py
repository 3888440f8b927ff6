"""Checkpoints of every ``fit``: Keras's backup-and-restore, written atomically on Keras 3.

Imported by ``keras_hooks`` once the script has imported Keras, so it imports ``keras`` at its top.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import keras

from mlops_harness.protocol import CHECKPOINT_DIR
from mlops_harness.recorder import Recorder, say

Logs = dict[str, Any] | None


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):  # type: ignore[misc]
    """Keras's backup-and-restore, each checkpoint written whole before it becomes the one to restore.

    A checkpoint is a folder ``ckpt-<epoch>-<batch>`` holding the weights (with the optimizer's state)
    and the epoch, renamed into place when complete, so a kill while writing leaves the one before
    intact. A checkpoint that cannot be read is skipped for the one before it, and a disk too full to
    write one is reported once while training goes on. Keras 3 only: Keras 2 keeps its own format.

    Saved once an epoch, except for an epoch that ends less than ``MIN_GAP_S`` after the last checkpoint
    was written: a small model's epochs are short (0.2 s for the demo's) and each checkpoint costs tens of
    milliseconds, a fifth of the training; a kill loses at most ``MIN_GAP_S`` more of it.
    """

    KEEP = 2
    MIN_GAP_S = 0.4

    def __init__(self, backup_dir: str, save_freq: str | int, rec: Recorder, fit_index: int) -> None:
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        self.folder = Path(backup_dir)
        self.rec = rec
        self.fit_index = fit_index
        self.disabled = False
        self.warned = False
        self.every_epoch = save_freq == "epoch"
        self.last_saved: float | None = None

    def _checkpoints(self) -> list[Path]:
        return sorted(self.folder.glob("ckpt-*"), reverse=True)

    def on_train_begin(self, logs: Logs = None) -> None:
        if not self.model.built:
            self.disabled = True
            say("checkpoints are off for this model: it is not built before fit()")
            return
        found = self._checkpoints()
        for checkpoint in found:
            try:
                meta = json.loads((checkpoint / "meta.json").read_text(encoding="utf-8"))
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(str(checkpoint / "model.weights.h5"))
                self.model._initial_epoch = int(meta["epoch"])
                return
            except Exception as e:  # noqa: BLE001 (a corrupt checkpoint of any sort)
                say(
                    f"checkpoint {checkpoint.name} cannot be read ({type(e).__name__}); trying the one before"
                )
        if found:
            say("no checkpoint could be read; training starts from the beginning")

    def _save_model(self) -> None:
        if self.disabled:
            return
        recent = self.last_saved is not None and time.monotonic() - self.last_saved < self.MIN_GAP_S
        if self.every_epoch and recent:
            return
        epoch, batch = int(self._current_epoch), int(self._last_batch_seen)
        name = f"ckpt-{epoch:06d}-{batch:06d}"
        tmp = self.folder / f".tmp-{name}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.model.save_weights(str(tmp / "model.weights.h5"))
            meta = {"epoch": epoch, "batch": batch, "at": time.time()}
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            final = self.folder / name
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self._checkpoints()[self.KEEP :]:
                shutil.rmtree(old, ignore_errors=True)
            self.last_saved = time.monotonic()
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if not self.warned:
                self.warned = True
                say(f"warning: could not write a checkpoint ({e.strerror or e}); training goes on without it")
            return
        self.rec.checkpoint(self.fit_index, epoch, batch, name)


def backup(rec: Recorder, index: int, every: int, keras_major: int) -> Any:
    """The backup-and-restore callback of fit number ``index``: checkpoints every epoch (every ``every``
    batches too when set), restored when the trial is started again."""
    backup_dir = rec.out / CHECKPOINT_DIR / f"fit-{index}"
    backup_dir.mkdir(parents=True, exist_ok=True)
    freq: str | int = every if every > 0 else "epoch"
    if keras_major >= 3:
        return AtomicBackupAndRestore(str(backup_dir), freq, rec, index)
    # Keras 2 keeps its own training-state format; its callback restores it
    return keras.callbacks.BackupAndRestore(str(backup_dir), save_freq=freq, delete_checkpoint=False)
