"""Options go anywhere, as people type them: before, after or between the positionals of every command and
job script (the cases are made from the parsers, so a new command or flag is covered as it is added); and
output piped into a reader that leaves early (``| head -1``) ends quietly."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.history import record_week
from tests.support.parsers import parsers
from tests.support.processes import run_cli
from tests.support.repos import ROOT

TAKES_NO_VALUE = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
)
SKIPPED = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
ALL = parsers()
RUNNABLE = {name: parser for name, parser in ALL.items() if name != "mlops"}


def words_of(action: argparse.Action) -> list[str]:
    """Values for ``action`` as a person types them: a choice, or a number or a word of its type."""
    count = {None: 1, "?": 1, "*": 2, "+": 2}.get(action.nargs, action.nargs)
    if action.choices:
        return [str(choice) for choice in list(action.choices)[:1]] * count
    if action.type is int:
        return [str(3 + n) for n in range(count)]
    if action.type is float:
        return [f"0.{5 + n}" for n in range(count)]
    return [f"{action.dest}-{n}" for n in range(count)]


def pieces(parser: argparse.ArgumentParser) -> tuple[list[list[str]], list[list[str]]]:
    """Each positional's words, and each option with its words (every flag the parser has)."""
    positionals, options = [], []
    for action in parser._actions:
        if isinstance(action, SKIPPED):
            continue
        if not action.option_strings:
            positionals.append(words_of(action))
        elif isinstance(action, TAKES_NO_VALUE):
            options.append([action.option_strings[-1]])
        else:
            options.append([action.option_strings[-1], *words_of(action)])
    return positionals, options


def orders(positionals: list[list[str]], options: list[list[str]]) -> dict[str, list[str]]:
    """The same command line with the options first, last, and dealt between the positionals."""
    flat = [word for option in options for word in option]
    dealt: list[str] = []
    for n, positional in enumerate(positionals):
        dealt += positional + [word for option in options[n :: len(positionals)] for word in option]
    return {
        "options first": flat + [w for p in positionals for w in p],
        "options last": [w for p in positionals for w in p] + flat,
        "options between": dealt if positionals else flat,
    }


def parse(name: str, words: list[str]) -> argparse.Namespace:
    if name.startswith("mlops "):
        return ALL["mlops"].parse_args([name.split()[1], *words])
    return RUNNABLE[name].parse_args(words)


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_option_may_come_before_after_or_between_the_positionals(name):
    positionals, options = pieces(RUNNABLE[name])
    assert options, f"{name} has no option to place"
    parsed = {order: parse(name, words) for order, words in orders(positionals, options).items()}
    first = parsed["options first"]
    assert all(namespace == first for namespace in parsed.values()), parsed
    for action in RUNNABLE[name]._actions:  # and what was parsed is what was typed
        if not action.option_strings and not isinstance(action, SKIPPED):
            typed = [action.type(w) if callable(action.type) else w for w in words_of(action)]
            got = getattr(first, action.dest)
            assert (got if isinstance(got, list) else [got]) == typed, f"{name} {action.dest}"


def test_the_cases_above_cover_the_commands_with_positionals_and_options_after_them():
    """The bug this fixes: a positional after an option was 'unrecognized' (nargs='*' filled at once)."""
    assert {
        "mlops datasets",
        "mlops images",
        "mlops classify",
        "mlops serve",
        "python -m jobs.job1_pull",
    } <= set(RUNNABLE)
    for name in ("mlops datasets", "mlops images", "mlops run"):
        positionals, options = pieces(RUNNABLE[name])
        assert positionals and options


def test_datasets_import_with_the_workspace_before_the_file_imports_it(tmp_path):
    import numpy as np

    data = tmp_path / "digits.npz"
    np.savez(data, x=np.arange(10))
    done = run_cli("datasets", "import", "--workspace", str(tmp_path / "ws"), str(data), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported: keras data set digits.npz")
    listed = run_cli("datasets", "list", "--workspace", str(tmp_path / "ws"), cwd=tmp_path)
    assert "digits.npz" in listed.stdout


def test_a_wrong_word_is_still_named_with_the_command(tmp_path):
    done = run_cli("datasets", "--workspace", str(tmp_path), "remove", cwd=tmp_path)
    assert done.returncode == 2
    assert "mlops datasets: error: argument action: invalid choice: 'remove'" in done.stderr


def test_history_json_piped_into_head_ends_quietly(tmp_path):
    """A real pipe into a real ``head -1``; the pipe is made one page small so that the history (about 20 kB)
    cannot fit in it: mlops is still writing when head leaves, whatever the timing."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for week in range(4):  # four weeks of runs in one ledger (each week's models repository apart)
        alias = tmp_path / f"week{week}" / "ws"
        alias.parent.mkdir()
        alias.symlink_to(workspace)
        record_week(alias)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    head = subprocess.Popen(["head", "-1"], stdin=read_end, stdout=subprocess.PIPE)
    mlops = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "history", "--json", "--workspace", str(workspace)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    os.close(read_end)
    os.close(write_end)
    first_line = head.communicate(timeout=120)[0]
    errors = mlops.communicate(timeout=120)[1].decode()
    assert json.loads(first_line)["run"] == "1-cnn"
    assert errors == "" and mlops.returncode == 141  # 128 + SIGPIPE, as other tools end there


def test_a_broken_pipe_that_is_not_our_output_is_not_hidden():
    """Only a reader of our own output that left is a quiet end; any other broken pipe is a fault."""
    from jobs.args import guarded

    def writes_to_a_dead_pipe() -> int:
        read_end, write_end = os.pipe()
        os.close(read_end)
        with open(write_end, "wb", buffering=0) as dead:
            dead.write(b"x")
        return 0

    with pytest.raises(BrokenPipeError):
        guarded(writes_to_a_dead_pipe)


def test_the_generated_cases_can_fail():
    """Plain argparse, as before: the same cases find the 'unrecognized arguments' of a FILE after options."""
    plain = argparse.ArgumentParser(exit_on_error=False)
    plain.add_argument("action", choices=["import", "list"])
    plain.add_argument("files", nargs="*", type=Path)
    plain.add_argument("--workspace", type=Path)
    positionals, options = pieces(plain)
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        plain.parse_args(orders(positionals, options)["options between"])
