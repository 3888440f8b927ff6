"""What a person sees at a terminal: a live status line (rich) while trials run, plain lines when the output
is no terminal, and tables that wrap words instead of cutting them. The screen is read by pyte, a terminal
emulator, from a real pseudo-terminal 100 columns wide."""

from __future__ import annotations

import io
import re
import time

import pytest

from mlops.ledger import Ledger
from mlops.progress import Progress, Running, RunState, plain_table
from tests.support.repos import make_repo
from tests.support.terminal import SPINNER, Terminal

LONG_CHANGE = (
    "why: an informed first guess: enough units, filters and epochs for this model to learn, "
    "and dropout where training runs far ahead of validation"
)


def on_terminal(term: Terminal, monkeypatch: pytest.MonkeyPatch) -> Progress:
    # rich measures the width of the process's own standard streams, which are not this terminal here
    monkeypatch.setenv("COLUMNS", str(term.columns))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    return Progress(open(term.slave, "w", closefd=False))


def test_the_live_line_shows_the_run_the_trial_its_epoch_the_best_and_the_time_left(monkeypatch):
    term = Terminal(columns=100, rows=30)
    progress = on_terminal(term, monkeypatch)
    progress.job(4, "tweak and retrain")
    progress.run_started("3-cnn", 0.8, 5, time.time() + 600, "accuracy", 0.61)
    progress.trial_started("3-cnn", 1, ["units 16 -> 64"])
    progress.trial_line("3-cnn", 1, "[mlops] epoch 3/10 accuracy=0.7000")
    progress.trial_epoch("3-cnn", 1, 3, 10)

    def shown(pattern: str) -> bool:
        return any(re.search(pattern, line) for line in term.lines() if SPINNER.match(line))

    assert term.wait_for(lambda: shown("epoch 3 of 10"), 10), term.lines()
    (live,) = [line for line in term.lines() if SPINNER.match(line)]
    assert re.search(r"run 3-cnn, (9:5\d|10:00) left", live), live
    assert "trial 1 (2 of 5): epoch 3 of 10 · best" in live
    assert "best accuracy 0.6100 < target 0.8" in live
    assert term.lines().index(live) == len(term.lines()) - 1  # at the bottom, under the log lines
    assert "   epoch 3/10 accuracy=0.7000" in term.lines()

    progress.trial_finished("3-cnn", 1, "succeeded", "accuracy 0.8500 in 12.0 s", metric=0.85)
    assert term.wait_for(lambda: shown("best accuracy 0.8500 >= target 0.8"), 10), term.lines()
    assert shown("between trials")
    progress.run_ended("3-cnn")
    term.close()
    lines = term.lines()
    assert not any(SPINNER.match(line) for line in lines)  # the line goes away with the run
    assert lines[-1] == "   trial 1 succeeded: accuracy 0.8500 in 12.0 s"
    assert b"\x1b[?25l" in term.raw and not term.screen.cursor.hidden  # hidden while live, shown again


def test_without_a_terminal_there_is_no_live_line_but_one_plain_line_per_event():
    out = io.StringIO()
    progress = Progress(out)
    progress.run_started("3-cnn", 0.8, 5, time.time() + 600, "accuracy", None)
    progress.trial_started("3-cnn", 0, [])
    progress.trial_epoch("3-cnn", 0, 1, 3)
    progress.trial_line("3-cnn", 0, "[mlops] epoch 1/3 accuracy=0.5000")
    progress.trial_finished("3-cnn", 0, "succeeded", "accuracy 0.5000 in 3.0 s", metric=0.5)
    progress.run_ended("3-cnn")
    assert progress.live is None
    assert out.getvalue().splitlines() == [
        "-- 3-cnn trial 0 (1 of 5): as pushed",
        "   epoch 1/3 accuracy=0.5000",
        "   trial 0 succeeded: accuracy 0.5000 in 3.0 s",
    ]
    assert "\x1b" not in out.getvalue()


def test_a_log_that_asks_for_colours_gets_them_but_no_live_line(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # as Jenkins's AnsiColor plugin is often set up
    out = io.StringIO()
    progress = Progress(out)
    progress.run_started("3-cnn", 0.8, 5, None, "accuracy", None)
    progress.trial_started("3-cnn", 0, [])
    progress.run_ended("3-cnn")
    assert progress.live is None and "\x1b[1m-- 3-cnn trial 0 (1 of 5): as pushed" in out.getvalue()
    term = Terminal(columns=100, rows=10)
    monkeypatch.setenv("TTY_INTERACTIVE", "0")  # rich's switch, on a real terminal
    assert on_terminal(term, monkeypatch).live_ok is False
    term.close()


def test_the_status_line_says_what_it_knows_and_nothing_it_does_not():
    state = RunState("7-kmeans", 0.8, 3, deadline=1000.0, metric="silhouette")
    assert state.line(now=1001.0) == (
        "run 7-kmeans, its time budget is used · between trials (budget 3) · no silhouette yet, target 0.8"
    )
    state = RunState("7-kmeans", 0.8, 3, deadline=None, metric="silhouette", best=0.81)
    state.running[2] = Running(since=100.0)
    assert state.line(now=165.0) == (
        "run 7-kmeans · trial 2 (3 of 3): 1:05 in · best silhouette 0.8100 >= target 0.8"
    )


def table_cells(lines: list[str], column: int) -> list[str]:
    """The text of one column of a rich table, one entry per row, its wrapped lines joined."""
    rows: list[list[str]] = []
    for line in lines:
        if not line.startswith(("│", "┃")):  # a body row, or the header's heavy lines
            continue
        cells = [c.strip() for c in re.split("[│┃]", line.strip("│┃"))]
        if cells[0]:  # a new row; an empty first cell continues the row above
            rows.append([])
        rows[-1].append(cells[column])
    return [" ".join(part for part in row if part) for row in rows]


def test_a_table_on_a_terminal_wraps_words_instead_of_cutting_them(monkeypatch):
    term = Terminal(columns=100, rows=30)
    progress = on_terminal(term, monkeypatch)
    changes = f"units 16 -> 64; {LONG_CHANGE}"
    progress.table(
        "run 3-cnn: cnn.py (cnn) - exhausted",
        ["trial", "status", "accuracy", "time", "restarts", "changes"],
        [
            ["0", "succeeded", "0.6100", "3.2s", 0, "as pushed"],
            ["1*", "succeeded", "0.7800", "4.0s", 0, changes],
        ],
    )
    term.close()
    lines = term.lines()
    assert max(len(line) for line in lines) <= 100
    assert table_cells(lines, 5) == ["changes", "as pushed", changes]
    assert table_cells(lines, 1) == ["status", "succeeded", "succeeded"]  # short columns stay whole


def test_a_plain_table_wraps_its_widest_column_at_word_boundaries():
    changes = f"units 16 -> 64; {LONG_CHANGE}"
    cells = [["trial", "status", "changes"], ["0", "succeeded", "as pushed"], ["1*", "failed", changes]]
    lines = plain_table(cells, 60)
    assert max(len(line) for line in lines) <= 60
    assert lines[0].split() == ["trial", "status", "changes"]
    column = lines[0].index("changes")
    assert lines[2].startswith("1*     failed")
    continued = [line[column:] for line in lines[2:]]
    assert all(line[:column].strip() == "" for line in lines[3:])  # the continuation stays in its column
    assert " ".join(continued) == changes
    assert plain_table(cells, 500)[2].endswith(changes)  # wide enough: one line per row


@pytest.mark.slow
def test_mlops_run_at_a_terminal_shows_the_live_line_no_note_that_does_not_apply_and_whole_words(tmp_path):
    from tests.support.scripts import KERAS

    repo = make_repo(tmp_path / "repo", {"net.py": KERAS.replace("epochs=4", "epochs=3")})
    ws = tmp_path / "ws"
    term = Terminal(columns=100, rows=400)
    code = term.run(
        [
            "run",
            str(repo),
            "--runtime",
            "local",
            "--workspace",
            str(ws),
            "--max-trials",
            "2",
            "--target",
            "0.99",
            "--max-minutes",
            "30",
        ],  # fmt: skip
        cwd=tmp_path,
        timeout=600,
    )
    lines = term.lines()
    assert code == 0, "\n".join(lines)
    epochs = [line for line in term.live if re.search(r"trial 1 \(2 of 2\): epoch \d+ of \d+ ", line)]
    assert epochs, term.live
    head = re.search(r"^. run 1-net, (\d+):\d\d left · trial 1 \(2 of 2\)", epochs[-1])
    assert head and int(head.group(1)) < 30, epochs[-1]
    assert re.search(r"best accuracy 0\.\d{4} < target 0\.99$", epochs[-1]), epochs[-1]
    assert all(len(line) <= 100 for line in term.live)
    text = "\n".join(lines)
    assert "note:" not in text  # no np_utils, no nb_epoch: nothing to say about them
    assert not any(SPINNER.match(line) for line in lines)  # the live line is gone at the end
    (run,) = Ledger(ws / "ledger.db").runs()
    trials = Ledger(ws / "ledger.db").trials(run.id)
    assert any(len("; ".join(t.changes)) > 60 for t in trials)  # a cell that has to wrap at 100 columns
    table = lines[next(i for i, line in enumerate(lines) if line.startswith(f"run {run.id}: net.py")) :]
    assert table_cells(table, 5) == ["changes"] + ["; ".join(t.changes) or "as pushed" for t in trials]
    assert max(len(line) for line in lines) <= 100
    index = ws / "runs" / "index.html"  # job 5 rewrote the page of all runs, and said where it is
    assert f"   all runs: {index}" in "\n".join(lines).replace("\n", "") and run.id in index.read_text()
