"""The metric a launch ended from outside had measured, chosen from its events as the harness would have
chosen it (mlops/measured.py). The trials that end so are in tests/security/test_limits.py and
tests/test_monitor.py; these are the choices, on event files as the harness writes them."""

from __future__ import annotations

from pathlib import Path

from mlops.last_measured import Measured, measured_before_end
from mlops_harness.protocol import EVENTS_FILE, EventKind, encode_event


def events(folder: Path, *lines: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / EVENTS_FILE).write_text("".join(line + "\n" for line in lines))
    return folder


STARTED = encode_event(EventKind.STARTED, script="train.py", pid=2)


def epoch(fit: int, number: int, **logs: float) -> str:
    return encode_event(EventKind.EPOCH, fit=fit, epoch=number, epochs=None, logs=logs)


def measured(name: str, value: float, source: str) -> str:
    return encode_event(EventKind.MEASURED, name=name, value=value, source=source)


def test_the_last_accuracy_the_script_measured_stands_before_any_epoch(tmp_path):
    folder = events(
        tmp_path,
        STARTED,
        epoch(0, 1, accuracy=0.5, val_accuracy=0.45),
        measured("accuracy", 0.61, "evaluate"),
        measured("silhouette", 0.3, "silhouette_score"),
        epoch(1, 1, accuracy=0.7, val_accuracy=0.66),
        measured("accuracy", 0.72, "evaluate"),
    )
    assert measured_before_end(folder) == Measured("accuracy", 0.72, "evaluate")


def test_without_a_measure_the_last_fits_last_epoch_counts_validation_first(tmp_path):
    folder = events(
        tmp_path,
        STARTED,
        epoch(0, 3, accuracy=0.9, val_accuracy=0.8),
        epoch(1, 1, accuracy=0.6),
        epoch(1, 2, accuracy=0.65),
    )
    assert measured_before_end(folder) == Measured("accuracy", 0.65, "train_accuracy")
    folder = events(tmp_path / "v", STARTED, epoch(0, 1, accuracy=0.9, val_accuracy=0.8))
    assert measured_before_end(folder) == Measured("accuracy", 0.8, "val_accuracy")


def test_only_the_last_launch_counts_and_a_cut_line_is_skipped(tmp_path):
    folder = events(tmp_path, STARTED, measured("accuracy", 0.9, "evaluate"), STARTED, '{"event": "meas')
    assert measured_before_end(folder) is None
    assert measured_before_end(events(tmp_path / "none", STARTED, epoch(0, 1, loss=2.0))) is None


def test_a_link_planted_as_the_events_file_is_not_followed(tmp_path):
    elsewhere = events(tmp_path / "elsewhere", STARTED, measured("accuracy", 0.99, "evaluate"))
    folder = tmp_path / "trial"
    folder.mkdir()
    (folder / EVENTS_FILE).symlink_to(elsewhere / EVENTS_FILE)
    assert measured_before_end(folder) is None
