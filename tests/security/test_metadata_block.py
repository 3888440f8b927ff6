"""scripts/sandbox-setup.sh never leaves the cloud metadata address open to trials quietly: it closes it, or
says loudly why not and records it for the tests (and fails as root without iptables). Whether a trial can
reach the address is tested for real in test_reach.py; these tests are quick and need no engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.attacks import SANDBOX_STATE, metadata_block, sandbox_state
from tests.support.repos import ROOT

SCRIPT = ROOT / "scripts" / "sandbox-setup.sh"
NOBODY = 65534
as_root = pytest.mark.skipif(os.getuid() != 0, reason="the script's root branch needs root")


def setup(folder: Path, *, path: str | None = None, user: list[str] = ()) -> tuple[int, str, dict]:
    """Run the script with its state file in ``folder``: (exit code, stderr, the state it recorded)."""
    state = folder / "state"
    env = {"PATH": path or os.environ["PATH"], "SANDBOX_STATE": str(state)}
    done = subprocess.run(
        [*user, "bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stderr, sandbox_state(state)


def tools(tmp_path: Path, *names: str) -> Path:
    """A folder of this machine's commands ``names``, to run the script on a PATH without the others."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in names:
        found = shutil.which(name)
        assert found, name
        (folder / name).symlink_to(found)
    return folder


def test_without_root_it_says_loudly_that_the_address_stays_open_and_records_why(tmp_path):
    # As root, the script is run as nobody (65534); a user who is not root runs it as themselves.
    user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if os.getuid() == 0 else []
    with tempfile.TemporaryDirectory() as folder:  # pytest's own folders are closed to other users
        Path(folder).chmod(0o777)
        code, stderr, state = setup(Path(folder), user=user)
    assert code == 0  # make demo goes on for a user who is not root
    why = "not root (the rules need root: sudo make sandbox)"
    assert state == {"local": f"open: {why}", "docker": f"open: {why}"}
    assert f"WARNING: 169.254.169.254 (cloud credentials) stays REACHABLE from local trials: {why}" in stderr
    assert "stays REACHABLE from Docker trials" in stderr


@as_root
def test_as_root_without_iptables_it_fails_and_records_why(tmp_path):
    code, stderr, state = setup(tmp_path, path=str(tools(tmp_path, "bash", "id", "bwrap", "mv", "cut")))
    assert code == 1
    assert state["local"] == "open: iptables is missing (apt-get install iptables, then make sandbox)"
    assert "stays REACHABLE from local trials: iptables is missing" in stderr


@as_root
def test_a_rule_iptables_refuses_is_said_loudly_and_recorded(tmp_path):
    """As in a container without the right to change the firewall."""
    folder = tools(tmp_path, "bash", "id", "bwrap", "mv", "cut")
    fake = folder / "iptables"
    fake.write_text("#!/bin/sh\necho 'iptables: Permission denied (you must be root).' >&2\nexit 4\n")
    fake.chmod(0o755)
    code, stderr, state = setup(tmp_path, path=str(folder))
    assert code == 0
    refused = "open: iptables refused the rule (iptables: Permission denied (you must be root).)"
    assert state == {"local": refused, "docker": refused}
    assert "stays REACHABLE from Docker trials: iptables refused the rule" in stderr


def test_this_machine_s_setup_closed_the_address_to_both_runtimes():
    """What make test's setup (make sandbox) recorded in this checkout: the block, or why it is missing."""
    assert SANDBOX_STATE.exists(), f"{SANDBOX_STATE} is missing: run make sandbox"
    assert (metadata_block("local"), metadata_block("docker")) == ("blocked", "blocked")
