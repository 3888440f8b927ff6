"""Attacks on what a trial can see: each case is a pushed script that tries one thing, run by `mlops run`
on both runtimes, and a check that the thing did not happen."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from tests.support.attacks import files_holding, pushed, run_pushed, runs, work_file
from tests.support.processes import run_cli

pytestmark = pytest.mark.slow

SECRETS = {
    "MLOPS_SMTP_PASSWORD": "smtp-pw-4f1a9",
    "MY_APIKEY": "apikey-77c2e0",
    "DB_PASSWD": "dbpasswd-5e8b1",
    "DATABASE_URL": "postgres://app:url-pw-93d4c@db.internal/app",
    "GITHUB_TOKEN": "ghp_tokenvalue0123456789",
}
SECRET_VALUES = [
    "smtp-pw-4f1a9",
    "apikey-77c2e0",
    "dbpasswd-5e8b1",
    "url-pw-93d4c",
    "ghp_tokenvalue0123456789",
]


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request):
    if request.param == "docker":
        request.getfixturevalue("docker_images")
    return request.param


def benign(tmp_path: Path, workspace: Path, runtime: str, name: str = "victim") -> dict:
    """A first repository, trained: a run in the ledger and a checkout in the workspace."""
    repo = pushed(tmp_path, name, "print('an honest model')\n")
    done = run_pushed(repo, workspace, runtime)
    assert done.returncode == 0, done.stderr
    return runs(workspace)[-1]


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


STEAL_ENV = """
import glob, os
found = [f"{k}={v}" for k, v in os.environ.items()]
for path in ["/proc/%d/environ" % os.getppid(), "/proc/1/environ", *glob.glob("/proc/[0-9]*/environ")]:
    try:
        found.append(open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        found.append(open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
open("stolen.txt", "w").write("\\n".join(found))
print("\\n".join(found))
"""


def test_the_callers_environment_is_out_of_reach(tmp_path, runtime):
    workspace = tmp_path / "ws"
    repo = pushed(tmp_path, "thief", STEAL_ENV)
    done = run_pushed(repo, workspace, runtime, env=SECRETS)
    assert done.returncode == 0, done.stderr
    stolen = work_file(workspace, runs(workspace)[0], "stolen.txt")
    assert stolen is not None and "MLOPS_SEED=" in stolen  # the script ran and wrote what it saw
    for value in SECRET_VALUES:
        assert value not in stolen and value not in done.stdout + done.stderr
        assert files_holding(workspace, value) == []


LEDGER_ATTACK = """
import os, sqlite3
ledger = {ledger!r}
found = []
here = os.getcwd()
while True:
    for name in ("ledger.db", ".mlops/ledger.db"):
        candidate = os.path.join(here, name)
        if os.path.exists(candidate):
            found.append(candidate)
    if here == "/":
        break
    here = os.path.dirname(here)
for path in [ledger, *found]:
    try:
        found.append(open(path, "rb").read(16).decode(errors="replace"))
    except OSError as e:
        found.append(f"read: {{e}}")
    try:
        db = sqlite3.connect(path)
        db.execute("UPDATE runs SET best_metric = 0.999")
        db.commit()
        found.append("updated")
    except Exception as e:
        found.append(f"update: {{e}}")
    try:
        open(path, "r+b").write(b"garbage")
        found.append("overwritten")
    except OSError as e:
        found.append(f"write: {{e}}")
open("found.txt", "w").write("\\n".join(found))
"""


def test_the_ledger_can_be_neither_read_nor_written(tmp_path, runtime):
    workspace = tmp_path / "ws"
    victim = benign(tmp_path, workspace, runtime)
    ledger = workspace / "ledger.db"
    repo = pushed(tmp_path, "forger", LEDGER_ATTACK.format(ledger=str(ledger)))
    done = run_pushed(repo, workspace, runtime)
    assert done.returncode == 0, done.stderr
    found = work_file(workspace, runs(workspace)[-1], "found.txt")
    assert found is not None and "SQLite format" not in found and "updated" not in found
    assert "overwritten" not in found
    with sqlite3.connect(ledger) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        best = db.execute("SELECT best_metric FROM runs WHERE id = ?", (victim["run"],)).fetchone()[0]
    assert best == victim["best_metric"] == pytest.approx(0.9)


CHECKOUT_ATTACK = """
import pathlib
cmdline = open("/proc/self/cmdline", "rb").read().split(b"\\0")
own_code = cmdline[cmdline.index(b"--code") + 1].decode()  # where the harness read this script from
results = []
for target in [{victim!r}, own_code + "/attack.py"]:
    try:
        with open(target, "a") as fh:
            fh.write("\\nraise SystemExit('planted by another repository')\\n")
        results.append("appended " + target)
    except OSError as e:
        results.append(f"refused {{target}}: {{e}}")
    try:
        (pathlib.Path(target).parent / "planted.py").write_text("x = 1\\n")
        results.append("planted next to " + target)
    except OSError as e:
        results.append(f"refused a new file: {{e}}")
open("found.txt", "w").write("\\n".join(results))
"""


def test_another_repositorys_checkout_and_its_own_code_cannot_be_written(tmp_path, runtime):
    workspace = tmp_path / "ws"
    victim = benign(tmp_path, workspace, runtime)
    (victim_repo,) = (workspace / "checkouts").iterdir()
    (victim_checkout,) = victim_repo.iterdir()
    before = tree_hash(victim_checkout)
    repo = pushed(tmp_path, "vandal", CHECKOUT_ATTACK.format(victim=str(victim_checkout / "attack.py")))
    done = run_pushed(repo, workspace, runtime)
    assert done.returncode == 0, done.stderr
    found = work_file(workspace, runs(workspace)[-1], "found.txt")
    assert found is not None and found.count("refused") == 4, found
    assert tree_hash(victim_checkout) == before
    assert not list((workspace / "checkouts").rglob("planted.py"))
    pushed_text = (tmp_path / "vandal" / "attack.py").read_text()
    (own,) = [p for p in (workspace / "checkouts").rglob("attack.py") if not p.is_relative_to(victim_repo)]
    assert own.read_text() == pushed_text
    # The victim trained again as pushed, not with code another repository slipped into its checkout.
    again = run_pushed(tmp_path / "victim", workspace, runtime, "--new-run")
    assert again.returncode == 0, again.stderr
    assert runs(workspace)[-1]["best_metric"] == victim["best_metric"]


SYSTEM_ATTACK = """
import os, socket
done = []
for path in ("/usr/lib/{tag}", "/etc/{tag}", "/root/{tag}", "/root/.bashrc", "/var/tmp/{tag}"):
    try:
        with open(path, "a") as fh:
            fh.write("{tag}")
        done.append("wrote " + path)
    except OSError:
        pass
for sock in ("/var/run/docker.sock", "/run/docker.sock"):
    try:
        client = socket.socket(socket.AF_UNIX)
        client.connect(sock)
        done.append("connected " + sock)
    except OSError:
        pass
for secret in ("/etc/shadow", "/root/.ssh/id_rsa", "/root/.docker/config.json", "/root/.bash_history"):
    try:
        open(secret).read(1)
        done.append("read " + secret)
    except OSError:
        pass
open("found.txt", "w").write("\\n".join(done))
"""


def test_the_system_the_home_folder_and_the_docker_socket_are_out_of_reach(tmp_path, runtime):
    workspace = tmp_path / "ws"
    tag = f"mlops-planted-{tmp_path.name}"
    bashrc = Path("/root/.bashrc")
    before = bashrc.read_bytes() if bashrc.exists() else None
    done = run_pushed(pushed(tmp_path, "intruder", SYSTEM_ATTACK.format(tag=tag)), workspace, runtime)
    assert done.returncode == 0, done.stderr
    (run,) = runs(workspace)
    found = work_file(workspace, run, "found.txt")
    assert found is not None
    # A write to the home folder, out of reach, is caught like an author's `/root/accuracy.txt`: it lands in
    # the trial's own outside/, never in the host's home. The system is never redirected: it refuses.
    for line in found.splitlines():
        assert line.startswith("wrote /root/"), found
        kept = work_file(workspace, run, "../outside/" + line.removeprefix("wrote /"))
        assert kept is not None and kept.endswith(tag), found
    assert (bashrc.read_bytes() if bashrc.exists() else None) == before
    for path in (Path("/usr/lib") / tag, Path("/etc") / tag, Path("/root") / tag, Path("/var/tmp") / tag):
        assert not path.exists()


PEEK = """
import os
seen = []
for path in {paths!r}:
    try:
        seen.append(path + ": " + (open(path).read()[:50] if os.path.isfile(path) else str(os.listdir(path))))
    except OSError:
        pass
open("found.txt", "w").write("\\n".join(seen))
"""


def test_other_runs_folders_are_out_of_sight(tmp_path, runtime):
    workspace = tmp_path / "ws"
    victim = benign(tmp_path, workspace, runtime)
    folder = Path(victim["dir"])
    paths = [
        str(folder / "trials" / "0" / "log.txt"),
        str(folder / "original.py"),
        str(folder),
        str(workspace),
    ]
    done = run_pushed(pushed(tmp_path, "peeker", PEEK.format(paths=paths)), workspace, runtime)
    assert done.returncode == 0, done.stderr
    seen = work_file(workspace, runs(workspace)[-1], "found.txt")
    assert "honest" not in seen and victim["run"] not in seen and "ledger.db" not in seen, seen


SWAP_LOG = """
import os, signal
for log in ("/trial/log.txt", os.path.join(os.path.dirname(os.getcwd()), "log.txt")):
    try:
        os.replace(log, log + ".old")
        os.symlink({victim!r}, log)
        print("swapped", log, flush=True)
    except OSError as e:
        print("cannot swap", log, e, flush=True)
print("after the swap: this line must not reach the victim", flush=True)
os._exit(128 + signal.SIGKILL)  # a crash: the trial is started again, and its log opened again
"""


def test_a_log_swapped_for_a_link_is_never_followed(tmp_path, runtime):
    workspace = tmp_path / "ws"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    repo = pushed(tmp_path, "swapper", SWAP_LOG.format(victim=str(victim)))
    run_pushed(repo, workspace, runtime, "--max-restarts", "1")
    assert victim.read_text() == "precious\n"
    assert runs(workspace)[0]["restarts"] == 1  # the log was opened again after the swap


LINK_TO_HOST = """
import os
here = os.path.dirname(os.getcwd())  # the trial folder (/trial in a container)
for name in ("log.txt", "metrics.json", "events.jsonl", "outcome.json"):
    path = os.path.join(here, name)
    try:
        if os.path.lexists(path):
            os.replace(path, path + ".old")
        os.symlink({host_file!r}, path)
    except OSError as e:
        print("cannot link", name, e, flush=True)
os._exit(5)  # the trial fails: mlops reads its last output and its files to say why
"""


def test_trial_files_linked_to_a_host_file_are_never_read_back(tmp_path, runtime):
    workspace = tmp_path / "ws"
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text('{"value": 0.99, "metric": "accuracy", "x": "host-secret-7d1e"}\nhost-secret-7d1e\n')
    done = run_pushed(
        pushed(tmp_path, "linker", LINK_TO_HOST.format(host_file=str(host_file))), workspace, runtime
    )
    shown = run_cli("show", runs(workspace)[0]["run"], "--json", "--workspace", str(workspace), cwd=tmp_path)
    assert "host-secret" not in done.stdout + done.stderr + shown.stdout
    assert runs(workspace)[0]["best_metric"] is None  # the linked "metrics" were not believed
    with sqlite3.connect(workspace / "ledger.db") as db:
        assert not any("host-secret" in " ".join(map(str, row)) for row in db.execute("SELECT * FROM trials"))
