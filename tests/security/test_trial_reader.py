"""The one reader of what a trial left (``mlops/trial_files.py``, ``mlops/trial_records.py``), on real files:
each case plants what a trial could (a link at the end or on the way, a hard link, a pipe, a file too large, a
record of the wrong type) and checks that it is refused, named, and never followed; and the places that read
a trial's folder (the model store, the legacy retry, the report, the terminal) do so through it.
The end-to-end attacks, run by `mlops run`, are in ``test_readback.py``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mlops import trial_files, trial_records
from mlops.domain import EndReason, RunStatus, TrialStatus
from mlops.layout import RunLayout
from mlops.model_store import ModelPolicy, publish, read_card
from mlops.progress import terminal_safe
from mlops.records import BadRecord, parse
from mlops.report import write_junit, write_report
from mlops.runtime.base import Outcome
from mlops.trial import read_result
from mlops.trial_files import BadTrialFile
from mlops.trial_records import Metrics
from mlops_harness.protocol import EVENTS_FILE, EventKind, ExitCode, encode_event
from monitor.supervisor import set_aside
from tests.support.models_left import finished_run, trial_with_model

SECRET = "host-secret-1b2c"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    secret = tmp_path / "host" / "shadow"
    secret.parent.mkdir()
    secret.write_text(f"{SECRET}\n")
    return secret


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    folder = tmp_path / "trial"
    folder.mkdir()
    return folder


def refused(call) -> str:
    with pytest.raises(BadTrialFile) as caught:
        call()
    assert SECRET not in str(caught.value)
    return str(caught.value)


def test_a_link_is_never_followed_at_the_end_or_on_the_way(trial: Path, host: Path) -> None:
    os.symlink(host, trial / "source.py")
    assert "source.py in the trial's folder is a link" in refused(
        lambda: trial_files.read_text(trial, "source.py")
    )
    os.symlink(host.parent, trial / "model")  # model/ itself a link to a folder of the host
    said = refused(lambda: trial_files.read_bytes(trial, "model/shadow"))
    assert "lies under a link (model)" in said


def test_a_hard_link_a_pipe_a_folder_and_a_large_file_are_refused(trial: Path, host: Path) -> None:
    (trial / "model").mkdir()
    os.link(host, trial / "model" / "model.pkl")
    assert "2 names" in refused(lambda: trial_files.read_bytes(trial, "model/model.pkl", single=True))
    os.mkfifo(trial / "events.jsonl")  # a reader opening a pipe would wait forever
    assert "not a regular file" in refused(lambda: trial_records.events(trial))
    (trial / "metrics.json").mkdir()
    assert "not a regular file" in refused(lambda: trial_records.metrics(trial))
    (trial / "outcome.json").write_bytes(b" " * (trial_files.CAPS["outcome.json"] + 1))
    assert "more than" in refused(lambda: trial_records.harness_outcome(trial))


def test_a_path_out_of_the_trials_folder_is_refused_without_looking(trial: Path, host: Path) -> None:
    for name in (str(host), "../host/shadow", "model/../../host/shadow", ""):
        assert "is not a path inside the trial's folder" in refused(
            lambda n=name: trial_files.read_bytes(trial, n)
        )


def test_records_of_the_wrong_type_are_named_where_they_are(trial: Path) -> None:
    (trial / "metrics.json").write_text(json.dumps({"value": 0.9, "history": [{"fit": 0, "epoch": "one"}]}))
    assert "history[0].epoch" in refused(lambda: trial_records.metrics(trial))
    (trial / "metrics.json").write_text(json.dumps({"metric": "<img src=x>", "value": 0.9}))
    assert "metric must be a name" in refused(lambda: trial_records.metrics(trial))
    (trial / "metrics.json").write_text('{"value": NaN}')
    assert "finite" in refused(lambda: trial_records.metrics(trial))
    (trial / "metrics.json").write_text("{not json")
    assert "is not JSON" in refused(lambda: trial_records.metrics(trial))
    model = {"saved": True, "file": "model/model.pkl", "format": "pickle", "size_bytes": "very big",
             "versions": ["sklearn"], "sha256": "0" * 64}  # fmt: skip
    good = encode_event(EventKind.EPOCH, epoch=1, logs={"accuracy": 0.5})
    (trial / EVENTS_FILE).write_text(
        good + "\n" + encode_event(EventKind.MODEL, **model) + "\n" + '{"event": "ep'
    )
    said = refused(lambda: trial_records.events(trial))
    assert (
        said.startswith("events.jsonl line 2 in the trial's folder holds a model event")
        and "versions: must be an object, not a list" in said
    )


def test_the_parser_takes_no_bool_for_a_number_and_no_number_for_text() -> None:
    with pytest.raises(BadRecord, match="epoch: must be an integer"):
        parse(trial_records.EpochFields, {"epoch": True})
    with pytest.raises(BadRecord, match="prompt: must be text"):
        parse(trial_records.InputFields, {"index": 0, "prompt": 3})
    assert (
        parse(Metrics, {"value": 1, "unknown": [1]}).value == 1.0
    )  # ints are numbers; unknown keys left out


def test_a_model_event_naming_a_host_path_says_the_same_whether_it_exists_or_not(
    trial: Path, host: Path
) -> None:
    data = host.read_bytes()
    said = []
    for path in (str(host), str(host.with_name("nothing"))):
        event = {"saved": True, "file": path, "format": "pickle", "size_bytes": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
        (trial / EVENTS_FILE).write_text(encode_event(EventKind.MODEL, **event) + "\n")
        said.append(refused(lambda: trial_records.read_left(trial)).replace(path, "<path>"))
    assert said[0] == said[1] and "file must be model/model.pkl" in said[0]


def test_what_a_launch_left_that_is_not_the_protocols_fails_the_trial_with_its_hint(
    trial: Path, host: Path
) -> None:
    (trial / "metrics.json").write_text(json.dumps({"metric": "accuracy", "value": 0.9}))
    os.symlink(host, trial / "params.json")
    result = read_result(trial, Outcome(EndReason.EXITED, ExitCode.OK, None, 1.0))
    assert (
        result.status is TrialStatus.FAILED and result.failure is not None and result.failure.value == "code"
    )
    assert "params.json in the trial's folder is a link" in (result.error or "") and result.hint
    assert result.metric is None


def test_the_model_store_copies_never_links_and_refuses_a_planted_link(tmp_path: Path, host: Path) -> None:
    ledger, run = finished_run(tmp_path, [b"the model"])
    published = run.dir / "model" / "model.pkl"
    assert published.read_bytes() == b"the model" and published.stat().st_nlink == 1
    folder = RunLayout(run.dir).trial(0).dir
    trial_with_model(folder, b"again")
    (folder / "model" / "model.pkl").unlink()
    os.symlink(host, folder / "model" / "model.pkl")  # the right name, a link to a host file
    published.unlink()
    card = publish(ledger, run, ledger.trial(run.id, 0), ModelPolicy())
    assert card["file"] is None and "is a link" in card["error"] and SECRET not in json.dumps(card)
    assert not published.exists() and host.stat().st_nlink == 1


def test_a_legacy_retry_starts_from_the_inputs_as_written_never_from_a_planted_link(
    trial: Path, host: Path
) -> None:
    """Before: the set-aside attempt's params.json link was copied with shutil.copy2, so the retry read
    the host file."""
    (trial / "source.py").write_text("print('model')\n")
    os.symlink(host, trial / "params.json")
    with pytest.raises(BadTrialFile, match="params.json in the trial's folder is a link"):
        set_aside(trial, "current")
    # Refused before anything moved: no retry starts from this folder, and none was set aside.
    assert (trial / "params.json").is_symlink() and not trial.with_name(f"{trial.name}.current").exists()
    clean = trial.with_name("clean")
    clean.mkdir()
    (clean / "source.py").write_text("print('model')\n")
    (clean / "params.json").write_text('{"units": 64}')
    (clean / "inputs.json").write_text('{"answers": ["3"]}')
    (clean / "files" / "0").mkdir(parents=True)
    (clean / "files" / "0" / "input.txt").write_text("3\n")
    set_aside(clean, "current")
    assert sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*") if p.is_file()) == [
        "files/0/input.txt",
        "inputs.json",
        "params.json",
        "source.py",
    ]


def test_job_5_writes_the_report_and_junit_for_a_card_an_older_mlops_wrote_from_a_bad_event(
    tmp_path: Path,
) -> None:
    ledger, run = finished_run(tmp_path, [b"the model"])
    card_file = run.dir / "model" / "model.json"
    card = json.loads(card_file.read_text())
    card.update(size_bytes="very big", versions=["sklearn", "1.0"])
    card_file.write_text(json.dumps(card))
    assert "not a model card mlops can use" in (read_card(run) or {}).get("error", "")
    (run.dir / "report.html").unlink(missing_ok=True)
    assert write_report(ledger, run.id).exists() and write_junit(ledger, run.id).exists()
    assert ledger.run(run.id).status is RunStatus.EXHAUSTED


def test_what_reaches_a_terminal_is_text_never_orders() -> None:
    pushed = "fix\x1b]0;title\x07\x1b[2J\r\x08\x7f\x9b\u202egnp.exe\n\tnext"
    shown = terminal_safe(pushed)
    assert shown == "fix\\x1b]0;title\\x07\\x1b[2J\\x0d\\x08\\x7f\\x9b\\u202egnp.exe\n\tnext"
    assert not any(ord(c) < 32 and c not in "\n\t" for c in shown)


def test_the_trials_inputs_are_what_runtimes_mount_read_only_and_never_a_link(
    trial: Path, host: Path
) -> None:
    (trial / "source.py").write_text("x = 1\n")
    (trial / "files").mkdir()
    os.symlink(host, trial / "params.json")  # a runtime would bind what it leads to
    assert trial_files.inputs_of(trial) == (trial / "source.py", trial / "files")
