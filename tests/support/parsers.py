"""Every argument parser a person meets: ``mlops``, each of its commands, and the six Jenkins job scripts."""

from __future__ import annotations

import argparse
import importlib

from jobs import cli

JOBS = [
    "jobs.job1_pull",
    "jobs.job2_classify",
    "jobs.job3_train",
    "jobs.job4_tweak",
    "jobs.job5_notify",
    "jobs.job6_monitor",
]


def commands(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each ``mlops`` command, by name."""
    (sub,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def parsers() -> dict[str, argparse.ArgumentParser]:
    """By the command line that starts them: ``mlops``, ``mlops run``, ..., ``python -m jobs.job1_pull``."""
    top = cli.build_parser()
    found = {"mlops": top}
    found.update({f"mlops {name}": parser for name, parser in commands(top).items()})
    for module in JOBS:
        found[f"python -m {module}"] = importlib.import_module(module).parser()
    return found
