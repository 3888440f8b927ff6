"""The local runtime's sandbox: its bubblewrap command line, the keeper's log sink, the environment a
training gets, and the one line when the sandbox cannot be made."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from mlops.envsafe import Redactor, is_secret, secret_values, trial_env
from mlops.errors import RuntimeUnavailable
from mlops.runtime import sandbox
from mlops.runtime.keeper import LogSink
from mlops.runtime.local import LocalRuntime
from tests.support.processes import run_cli
from tests.support.repos import make_repo
from tests.support.trials import trial_spec


def box(tmp_path: Path, **changes) -> sandbox.Sandbox:
    fields = {
        "bwrap": "/usr/bin/bwrap",
        "read_only": (Path("/opt/python"), tmp_path / "ws" / "checkouts" / "r" / "c0ffee"),
        "writable": (tmp_path / "ws" / "runs" / "1-r" / "trials" / "0", tmp_path / "ws" / "cache" / "k"),
        "protected": (tmp_path / "ws" / "runs" / "1-r" / "trials" / "0" / "log.txt",),
        "network": True,
        "uid": None,
        "workdir": tmp_path / "ws" / "runs" / "1-r" / "trials" / "0",
    }
    return sandbox.Sandbox(**{**fields, **changes})


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_the_command_line_says_the_whole_policy(tmp_path):
    spec = box(tmp_path)
    argv = sandbox.bwrap_argv(spec, ["python", "harness"])
    assert argv[-3:] == ["--", "python", "harness"]
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-user"):
        assert flag in argv
    assert "--unshare-net" not in argv  # the network is on
    assert sorted(pairs(argv, "--bind")) == sorted(str(p) for p in spec.writable)  # the only writable ones
    ro = pairs(argv, "--ro-bind")
    assert "/usr" in ro and str(spec.read_only[1]) in ro and str(spec.protected[0]) in ro
    # The log is made read-only after (inside) the trial folder's writable mount.
    assert ro.index(str(spec.protected[0])) > 0 and argv.index(str(spec.protected[0])) > argv.index("--bind")
    assert not any(str(tmp_path / "ws") == p for p in ro + pairs(argv, "--bind"))  # never the workspace
    assert all(not p.startswith("/home") and p != "/" for p in ro)
    assert pairs(argv, "--tmpfs") == ["/tmp", "/dev/shm"]  # private, and first: binds under /tmp survive
    assert argv.index("/tmp") < argv.index(str(spec.writable[0]))


def test_offline_and_as_root_the_training_gets_no_network_and_drops_to_nobody(tmp_path):
    argv = sandbox.bwrap_argv(box(tmp_path, network=False, uid=65534), ["python"])
    assert "--unshare-net" in argv and "--unshare-user" not in argv
    drop = argv[argv.index("setpriv") : argv.index("python")]
    assert "--reuid=65534" in drop and "--clear-groups" in drop and "--bounding-set=-all" in drop


def test_the_interpreters_folders_are_read_only_and_outermost():
    roots = sandbox.python_roots(os.sys.executable)
    assert roots and all(not r.is_relative_to("/usr") for r in roots)
    assert all(not a.is_relative_to(b) for a in roots for b in roots if a != b)


def test_the_sink_masks_a_secret_even_split_across_writes(tmp_path):
    path = tmp_path / "log.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    sink = LogSink(fd, ["hunter2-secret"], head=1 << 20, tail=1 << 20)
    for chunk in (b"the password is hunt", b"er2-sec", b"ret!\nand hunter2-secret again\n", b"end hunt"):
        sink.write(chunk)
    sink.close()
    os.close(fd)
    text = path.read_text()
    assert "hunter2" not in text and text == "the password is ********!\nand ******** again\nend hunt"


def test_the_sink_keeps_the_head_and_the_tail_and_says_how_much_was_dropped(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(b"x" * 100)  # an earlier launch's output counts against the head
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    sink = LogSink(fd, [], head=1000, tail=300)
    for i in range(2000):
        sink.write(f"line {i:05d}\n".encode())
    sink.close()
    os.close(fd)
    text = path.read_text()
    dropped = 2000 * 11 - 900 - 300
    assert text.startswith("x" * 100 + "line 00000\n") and text.endswith("line 01999\n")
    assert f"[mlops] {dropped} bytes of output were dropped here (log cap)" in text
    assert len(text) < 100 + 900 + 300 + 300


def test_secrets_are_known_by_name_and_by_a_password_in_a_url():
    for name in ("MY_APIKEY", "DB_PASSWD", "MLOPS_SMTP_PASSWORD", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"):
        assert is_secret(name), name
    for name in ("PWD", "PATH", "KERAS_BACKEND", "MLOPS_TRIAL_ENV", "HOME"):
        assert not is_secret(name), name
    values = secret_values({"DATABASE_URL": "postgres://app:pw-in-url@db/app", "PATH": "/usr/bin"})
    assert "pw-in-url" in values and "/usr/bin" not in values
    assert (
        Redactor.from_env({"X_URL": "https://u:s3cr3t-pw@h/x"})("got https://u:s3cr3t-pw@h/x")
        == "got ********"
    )


def test_the_training_environment_is_an_allow_list_not_the_callers_minus_secrets():
    caller = {
        "LANG": "C.UTF-8",
        "DATABASE_URL": "postgres://app:pw@db/app",
        "INNOCENT_LOOKING": "value",
        "PATH": "/home/me/bin:/usr/bin",
        "LD_PRELOAD": "/evil.so",
    }
    env = trial_env(caller, {"MLOPS_SEED": "3", "PATH": "/from/repo"}, {"PATH": "/venv/bin:/usr/bin"})
    assert env == {"LANG": "C.UTF-8", "MLOPS_SEED": "3", "PATH": "/venv/bin:/usr/bin"}


def test_without_bwrap_the_local_runtime_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeUnavailable) as e:
        LocalRuntime(tmp_path / "ws")
    assert "bubblewrap" in str(e.value) and "--unsandboxed" in str(e.value) and "\n" not in str(e.value)
    assert not LocalRuntime(tmp_path / "ws", sandboxed=False).sandboxed  # the explicit way out


def test_mlops_run_without_bwrap_exits_3_before_pulling_and_unsandboxed_needs_the_local_runtime(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": "print(1)\n"})
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("git", "true"):
        (tools / tool).symlink_to(f"/usr/bin/{tool}")
    done = run_cli("run", str(repo), "--runtime", "local", cwd=tmp_path, env={"PATH": str(tools)})
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and "bubblewrap" in done.stderr
    assert not (tmp_path / ".mlops" / "checkouts").exists()
    done = run_cli("run", str(repo), "--runtime", "docker", "--unsandboxed", cwd=tmp_path)
    assert done.returncode == 2 and "unsandboxed" in done.stderr


NOISY = """
    import sys
    line = "x" * 99 + "\\n"
    for _ in range(200_000):  # 20 MB
        sys.stdout.write(line)
    print("the end")
    print(0.9)
    open("accuracy.txt", "w").write("0.9")
"""


@pytest.mark.parametrize("runtime_name", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_20_mb_print_leaves_a_capped_log_with_its_head_and_tail(tmp_path, runtime_name, request):
    spec = trial_spec(tmp_path, "noisy", textwrap.dedent(NOISY))
    if runtime_name == "local":
        runtime = LocalRuntime(tmp_path / "ws")
    else:
        runtime = request.getfixturevalue("docker_runtime")(tmp_path / "ws")
    handle = runtime.run(spec)
    lines = list(runtime.logs(handle))
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.ok, outcome
    log = (spec.trial_dir / "log.txt").read_bytes()
    assert len(log) < 6 * 2**20 and b"bytes of output were dropped here (log cap)" in log
    assert b"the end\n0.9\n" in log[-2000:]
    assert json.loads((spec.trial_dir / "metrics.json").read_text())["value"] == 0.9
    assert lines


WHO_AM_I = """
import getpass, os, pwd
open("accuracy.txt", "w").write("0.9")
hosts = open("/etc/hosts").read()  # the sandbox's /etc must be readable by the training's user
entries = [line.split(":")[0] for line in open("/etc/passwd").read().splitlines()]
print("who", getpass.getuser(), os.getuid(), pwd.getpwuid(os.getuid()).pw_name, "hosts", len(hosts) > 0)
print("passwd", ",".join(entries))
"""


def test_a_trial_reads_etc_and_its_user_has_a_name_but_sees_no_passwd_of_the_machine(tmp_path):
    """torch and Lightning call getpass.getuser(): a uid with no passwd entry raised KeyError ('getpwuid():
    uid not found: 65534'), and as root bwrap made /etc mode 0700, so nobody could not read /etc/hosts."""
    spec = trial_spec(tmp_path, "who", textwrap.dedent(WHO_AM_I))
    runtime = LocalRuntime(tmp_path / "ws")
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    log = (spec.trial_dir / "log.txt").read_text()
    assert outcome.ok, log
    user = "nobody" if os.geteuid() == 0 else os.environ.get("USER", "")
    assert f"who {user} {65534 if os.geteuid() == 0 else os.getuid()} {user} hosts True" in log, log
    machine = {line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines()}
    shown = set(log.split("passwd ", 1)[1].split()[0].split(","))
    assert shown <= {"root", "nobody", user} and shown != machine  # its own, not the machine's accounts


def test_the_sandbox_s_etc_is_readable_before_its_files_and_its_users_are_its_own(tmp_path):
    identity = tmp_path / "etc"
    argv = sandbox.bwrap_argv(box(tmp_path, identity=identity), ["python"])
    etc = argv.index("/etc")
    assert argv[etc - 3 : etc + 1] == ["--perms", "0755", "--dir", "/etc"]
    assert etc < argv.index("/etc/ssl")
    at = argv.index("/etc/passwd")
    assert argv[at - 2 : at] == ["--ro-bind", str(identity / "passwd")]
    passwd, group = sandbox.identity_text(65534, 65534, "nobody")
    assert passwd.splitlines() == [
        "root:x:0:0:root:/root:/usr/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    ]
    assert group.splitlines() == ["root:x:0:", "nogroup:x:65534:"]
    passwd, _ = sandbox.identity_text(1234, 1234, "ada")  # an unprivileged caller's uid gets a name too
    assert "ada:x:1234:1234:ada:/tmp:/usr/sbin/nologin" in passwd.splitlines()


def test_the_identity_folder_is_made_once_and_refused_when_another_user_could_change_it(tmp_path):
    folder = sandbox.identity_dir(as_root=True, base=tmp_path)
    assert (folder / "passwd").read_text() == sandbox.identity_text(65534, 65534, "nobody")[0]
    assert sandbox.identity_dir(as_root=True, base=tmp_path) == folder
    os.chmod(folder, 0o777)  # anyone could replace its files
    with pytest.raises(RuntimeUnavailable, match="is not a folder of this user's alone"):
        sandbox.identity_dir(as_root=True, base=tmp_path)
    os.chmod(folder, 0o700)
    folder.rename(tmp_path / "elsewhere")
    folder.symlink_to(tmp_path / "elsewhere")  # a link in its place
    with pytest.raises(RuntimeUnavailable, match="is not a folder of this user's alone"):
        sandbox.identity_dir(as_root=True, base=tmp_path)
