"""A trial stopped at its time limit while it busy-waited for a file says which file, on which line, and how
to map it (the corpus's waits_for_file does so end to end on both runtimes, in tests/test_corpus.py)."""

from __future__ import annotations

from pathlib import Path

from mlops.domain import EndReason, TrialStatus
from mlops.project import DataPath
from mlops.runtime.base import Outcome, TrialSpec
from mlops.trial import LaunchResult
from mlops.waits import Wait, explain_timeout, hint, waited_for, waits_in
from mlops_harness.protocol import FailureClass
from tests.support.corpus import CORPUS

CLASSIC = (
    "import os, time\n\nwhile not os.path.exists('/root/shared/dataset_ready.flag'):\n    time.sleep(1)\n"
)


def test_loops_that_wait_for_a_path_are_found_with_their_line():
    source = """import os, time, glob
from pathlib import Path
FLAG = '/data/ready'
while not os.path.isfile(FLAG):
    time.sleep(1)
while not Path('/data/done').exists():
    time.sleep(1)
while True:
    if glob.glob('/data/*.csv'):
        break
    time.sleep(2)
while not (os.path.isdir('/a') and os.path.exists(some_variable)):
    pass
while x < 3:
    x += 1
"""
    assert waits_in(source) == [
        Wait("/data/ready", 4),
        Wait("/data/done", 6),
        Wait("/data/*.csv", 8, pattern=True),
        Wait("/a", 12),
    ]
    assert waits_in("while (:\n") == []  # a source that does not parse has no facts


def test_a_path_the_trial_has_is_not_blamed(tmp_path: Path):
    (tmp_path / "shared").mkdir()
    assert waited_for(CLASSIC, (), tmp_path) == Wait("/root/shared/dataset_ready.flag", 3)
    mapped = (DataPath("/root/shared", str(tmp_path / "shared")),)
    assert waited_for(CLASSIC, mapped, tmp_path) == Wait("/root/shared/dataset_ready.flag", 3)
    (tmp_path / "shared" / "dataset_ready.flag").write_text("")
    assert waited_for(CLASSIC, mapped, tmp_path) is None  # there: the time limit was for another reason
    relative = "import os\nwhile not os.path.exists('ready.flag'):\n    pass\n"
    assert waited_for(relative, (), tmp_path) == Wait("ready.flag", 2)
    (tmp_path / "ready.flag").write_text("")
    assert waited_for(relative, (), tmp_path) is None


def _timed_out(tmp_path: Path, source: str) -> tuple[TrialSpec, LaunchResult]:
    (tmp_path / "source.py").write_text(source)
    spec = TrialSpec("r1", 0, tmp_path, "train.py", tmp_path / "source.py", tmp_path)
    outcome = Outcome(EndReason.TIMEOUT, detail="stopped after 15 s")
    result = LaunchResult(
        TrialStatus.FAILED,
        outcome,
        error="the training ran past its time limit: stopped after 15 s",
        failure=FailureClass.TIMEOUT,
        hint="raise --timeout, or fewer epochs",
    )
    return spec, result


def test_the_timeout_says_what_the_script_waited_for(tmp_path: Path):
    spec, result = _timed_out(tmp_path, (CORPUS / "waits_for_file" / "train.py").read_text())
    said = explain_timeout(spec, result)
    assert said.failure is FailureClass.DATA and said.outcome.reason is EndReason.TIMEOUT
    assert (said.error_file, said.error_line) == ("train.py", 5)
    assert said.hint is not None
    assert said.hint.startswith(
        "the script waited for /root/shared/dataset_ready.flag (train.py:5), which never came"
    )
    assert "data: {/root/shared: <the folder here that holds dataset_ready.flag>}" in said.hint
    assert "mlops.yaml" in said.hint


def test_a_file_beside_the_script_is_mapped_itself():
    assert "(data: {ready.flag: <the file here>})" in hint(Wait("./ready.flag", 2), "train.py")
    assert "(data: {/data: <the folder here that holds *.csv>})" in hint(Wait("/data/*.csv", 2, True), "t.py")


def test_a_timeout_with_no_wait_keeps_its_generic_reason(tmp_path: Path):
    spec, result = _timed_out(tmp_path, "for i in range(10**12):\n    pass\n")
    assert explain_timeout(spec, result) == result
    spec, result = _timed_out(tmp_path, CLASSIC)
    crashed = LaunchResult(TrialStatus.FAILED, result.outcome, error="boom", failure=FailureClass.CODE)
    assert explain_timeout(spec, crashed) == crashed  # only a timeout is explained so
