"""The harness's wire protocol: events one JSON object per line, read tolerantly; atomic writes; keys."""

from __future__ import annotations

import threading

from mlops_harness.protocol import (
    EVENTS_FILE,
    Event,
    EventKind,
    EventWriter,
    ExitCode,
    accuracy_key,
    decode_event,
    decode_events,
    describe_stop,
    encode_event,
    read_events,
    read_json,
    write_atomic,
)


def test_an_event_is_one_line_of_json_and_decodes_to_what_was_encoded():
    line = encode_event(EventKind.EPOCH, at=12.5, fit=0, epoch=3, epochs=None, logs={"loss": 0.25})
    assert "\n" not in line
    assert decode_event(line) == Event(
        EventKind.EPOCH, 12.5, {"fit": 0, "epoch": 3, "epochs": None, "logs": {"loss": 0.25}}
    )
    assert decode_event('{"event": "rebooted", "at": 1}') is None  # a kind this side does not know
    assert decode_event("[1, 2]") is None and decode_event("") is None


def test_a_last_line_cut_short_by_a_kill_is_skipped(tmp_path):
    path = tmp_path / EVENTS_FILE
    whole = [
        encode_event(EventKind.STARTED, script="a.py", pid=7),
        encode_event(EventKind.RESUMED, fit=0, epoch=2),
    ]
    cut = encode_event(EventKind.EPOCH, fit=0, epoch=3, epochs=5, logs={"accuracy": 0.9})[:-7]
    path.write_text("\n".join([*whole, cut]))
    assert [e.kind for e in read_events(path)] == [EventKind.STARTED, EventKind.RESUMED]
    assert [e.kind for e in decode_events([*whole, cut])] == [EventKind.STARTED, EventKind.RESUMED]
    assert read_events(tmp_path / "missing.jsonl") == []


def test_a_writer_after_a_cut_line_starts_a_line_of_its_own_and_flushes_each_event(tmp_path):
    path = tmp_path / EVENTS_FILE
    path.write_text(encode_event(EventKind.STARTED, pid=1) + "\n" + '{"event": "epo')
    writer = EventWriter(path)
    writer.write(EventKind.STARTED, pid=2)
    assert [e.get("pid") for e in read_events(path)] == [1, 2]  # readable before close: flushed
    threads = [
        threading.Thread(target=lambda n=n: [writer.write(EventKind.CHECKPOINT, n=n, i=i) for i in range(50)])
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert len(read_events(path)) == 2 + 200
    assert len(path.read_text().splitlines()) == 3 + 200  # the cut line stays alone on its line


def test_atomic_writes_and_tolerant_json_reads(tmp_path):
    target = tmp_path / "deeper" / "metrics.json"
    write_atomic(target, '{"value": 0.9}')
    assert read_json(target) == {"value": 0.9}
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temporary file left
    target.write_text('{"value": 0.')  # half-written by something that is not write_atomic
    assert read_json(target) is None and read_json(tmp_path / "none.json") is None
    target.write_text("[1]")
    assert read_json(target) is None


def test_exit_codes_and_accuracy_keys():
    assert [int(c) for c in ExitCode] == [0, 1, 3, 4, 5]
    logs = {"loss": 1.0, "sparse_categorical_accuracy": 0.8, "val_sparse_categorical_accuracy": 0.7}
    assert accuracy_key(logs) == "sparse_categorical_accuracy"
    assert accuracy_key(logs, "val_") == "val_sparse_categorical_accuracy"
    assert accuracy_key({"acc": 1, "val_acc": 1}) == "acc" and accuracy_key({"loss": 1}) is None


def test_an_early_stop_is_said_with_its_reason():
    patience = {"why": "patience", "monitor": "val_accuracy", "patience": 3, "best_epoch": 4, "value": 0.8}
    assert describe_stop(patience) == "no better val_accuracy in 3 epochs, weights of epoch 4"
    target = {"why": "target", "monitor": "val_acc", "value": 0.8312, "best_epoch": 2}
    assert describe_stop(target) == "val_acc (0.8312) past the target"
