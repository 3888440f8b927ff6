"""The help a new user reads: every flag of every command says what it does and its default, every
command's help ends with one example (which parses), and ``mlops --version`` says the package's version."""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib

import pytest

from tests.support.parsers import parsers
from tests.support.processes import run_cli
from tests.support.repos import ROOT

# Flags that take no value: on or off, their default is the other one.
SWITCHES = (
    argparse._HelpAction,
    argparse._VersionAction,
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._SubParsersAction,
)


ALL = parsers()


def test_there_are_the_commands_and_the_jobs_a_person_can_ask_for_help():
    assert len(ALL) == 1 + 11 + 6
    assert {
        "mlops run",
        "mlops watch",
        "mlops history",
        "mlops compare",
        "mlops model",
        "python -m jobs.job5_notify",
    } <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_flag_says_what_it_does_and_its_default(name):
    for action in ALL[name]._actions:
        what = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help != argparse.SUPPRESS, f"{what} has no help"
        assert len(action.help.split()) >= 3, f"{what}: {action.help!r} says too little"
        takes_a_value = action.option_strings and not isinstance(action, SWITCHES)
        may_be_left_out = not action.option_strings and action.nargs in ("?", "*")
        if takes_a_value or may_be_left_out:
            assert re.search(r"\bdefault\b", action.help), f"{what}: {action.help!r} does not say its default"
        if action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action, SWITCHES):
            shown = f"{action.default:g}" if isinstance(action.default, float) else str(action.default)
            assert f"default {shown}" in action.help, f"{what}: the help's default is not {shown}"


@pytest.mark.parametrize("name", ALL)
def test_every_help_ends_with_one_example_that_parses(name):
    parser = ALL[name]
    lines = parser.format_help().rstrip().splitlines()
    assert lines[-2] == "example:", f"{name} --help does not end with an example"
    words = shlex.split(lines[-1])
    while re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # an environment variable set for the command
        words.pop(0)
    command = shlex.split(name)
    assert words[: len(command)] == command, f"the example of {name} runs something else: {lines[-1]}"
    if name.startswith("mlops"):
        ALL["mlops"].parse_args(words[1:])
    else:
        parser.parse_args(words[len(command) :])


def test_mlops_version_is_the_package_version():
    done = run_cli("--version", cwd=ROOT)
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert done.returncode == 0 and done.stdout == f"mlops {expected}\n"


def test_mlops_watch_help_as_a_person_reads_it():
    done = run_cli("watch", "--help", cwd=ROOT, env={"COLUMNS": "100"})
    assert done.returncode == 0
    text = done.stdout
    assert re.search(r"--branch BRANCH\s+the branch to poll \(default main\)", text)
    assert re.search(r"--interval SECONDS\s+seconds between two polls \(default 60\)", text)
    assert re.search(
        r"--workspace DIR\s+the folder of the ledger, checkouts and runs \(default\s+\.mlops\)", text
    )
    assert text.rstrip().endswith(
        "example:\n  mlops watch https://github.com/you/models.git --branch main --interval 60"
    )
