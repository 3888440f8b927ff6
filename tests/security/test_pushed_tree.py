"""Attacks through the pushed repository itself: symbolic links that point out of it, and terminal escape
sequences in what the push says (its commit subject, its author, its script's output and errors) that would
take over the person's terminal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.attacks import ENTRY, METRIC, pushed, run_pushed, runs
from tests.support.repos import git, make_repo
from tests.support.terminal import Terminal

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "link,target",
    [("secret.txt", "/etc/shadow"), ("data/up.txt", "../../etc/passwd"), ("a", "z/s/..")],
    ids=["absolute", "up-and-out", "through-another-link"],
)
def test_a_link_out_of_the_repository_ends_the_pull_in_one_line(
    tmp_path: Path, link: str, target: str
) -> None:
    """Before: the pull ended with tarfile's traceback (an uncaught AbsoluteLinkError)."""
    repo = pushed(tmp_path, "linked", "print('hi')\n")
    (repo / link).parent.mkdir(parents=True, exist_ok=True)
    if link == "a":
        (repo / "z").mkdir()
        os.symlink("..", repo / "z" / "s")  # inside on its own; 'a' then leads out through it
    os.symlink(target, repo / link)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a link")
    done = run_pushed(repo, tmp_path / "ws", "local")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("mlops: error:")]
    assert (
        len(errors) == 1 and f"'{link}' is a symbolic link to '{target}', outside the repository" in errors[0]
    )
    assert not list((tmp_path / "ws" / "checkouts").rglob("*.tmp"))  # the half-made export is gone
    assert runs(tmp_path / "ws") == []


INSIDE = """
import os
print("through the link:", open("data/link.csv").read().strip(), open("alias.py").read().count("print"))
"""


def test_a_link_inside_the_repository_is_kept(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "kept",
        {ENTRY: INSIDE + METRIC, "mlops.yaml": f"entry_points: [{ENTRY}]\n", "datasets/v2.csv": "x,y\n"},
    )
    (repo / "data").mkdir()
    os.symlink("../datasets/v2.csv", repo / "data" / "link.csv")
    os.symlink(ENTRY, repo / "alias.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links inside")
    done = run_pushed(repo, tmp_path / "ws", "local", "-v")
    assert done.returncode == 0, done.stderr
    assert "through the link: x,y" in done.stdout


LOUD = """
import sys
print("\\x1b]0;pwned-title\\x07\\x1b[2J\\x1b[Hthe training says hello\\u202e", flush=True)
print("\\x1b[8mhidden\\x1b[0m", file=sys.stderr, flush=True)
raise ValueError("\\x1b[2Jboom\\x1b]0;pwned-again\\x07")
"""


def test_escape_sequences_from_a_push_reach_the_terminal_as_text(tmp_path: Path) -> None:
    """Before: a commit subject, an author's name and the training's output with escape sequences cleared
    the person's screen and set its title."""
    repo = make_repo(
        tmp_path / "loud",
        {ENTRY: LOUD, "mlops.yaml": f"entry_points: [{ENTRY}]\n"},
        message="fix\x1b]0;pwned-commit\x07\x1b[2J subject",
    )
    subprocess.run(
        ["git", "commit", "-q", "--amend", "--no-edit", "--reset-author"],
        cwd=repo,
        env={**os.environ, "GIT_AUTHOR_NAME": "Eve\x1b[2J", "GIT_COMMITTER_NAME": "Eve", "GIT_AUTHOR_EMAIL": "e@x",
             "GIT_COMMITTER_EMAIL": "e@x"},
        check=True,
    )  # fmt: skip
    term = Terminal(columns=200, rows=400)
    code = term.run(
        [
            "run",
            str(repo),
            "--runtime",
            "local",
            "--workspace",
            str(tmp_path / "ws"),
            "--max-trials",
            "1",
            "-v",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    text = "\n".join(term.lines())
    assert code != 0, text  # the script fails: its error is shown too
    assert term.screen.title == "", term.screen.title  # no push set the window's title
    for raw in (b"\x1b]0;pwned", b"\x1b[2J", b"\x1b[8m", "\u202e".encode()):
        assert raw not in term.raw, raw
    assert "fix\\x1b]0;pwned-commit\\x07\\x1b[2J subject" in text  # shown, as text
    assert "Eve\\x1b[2J" in text
    assert "the training says hello\\u202e" in text
    assert "boom\\x1b]0;pwned-again\\x07" in text
