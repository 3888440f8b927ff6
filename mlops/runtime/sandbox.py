"""The local runtime's sandbox: bubblewrap's command line for one trial, and whether bwrap works here.

A trial runs in new PID, IPC, UTS and cgroup namespaces (and a network namespace with only loopback when
the network is off), in a session of its own, and dies with the keeper that started it. Its file system is
built from nothing: the system (``/usr`` and the few files of ``/etc`` that Python, TLS and name lookups
read) and the interpreter with its virtual environment, read-only; the harness and the code, read-only; its
trial folder, read-write (except its log and its source, which it may read but not replace); the dataset
cache of its repository, read-write; the machine's imported data sets (``mlops datasets import``),
read-only; the folders of the pushed ``data:`` at the paths the script uses, read-only unless marked
writable; a private ``/tmp`` (a folder of its disk quota's file system, when it has one). The workspace's
ledger, the other runs, the other checkouts, the caller's home and the Docker socket are not there at all.
When mlops runs as root the training runs as ``nobody`` (``setpriv`` drops the user, groups and
capabilities after bwrap has made the mounts); otherwise it keeps the caller's user, in a user namespace with no capabilities.

:func:`bwrap_argv` is the whole policy: one short function that builds the command line.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import RuntimeUnavailable
from mlops_harness.protocol import write_atomic

MOUNTED = {Path(p) for p in ("/", "/tmp", "/usr", "/dev", "/proc")}  # there before the binds
TRIAL_UID = 65534  # nobody: the training's user when mlops runs as root
BASE_KEY = "mlops-base"  # in a venv's pyvenv.cfg: the environment whose packages it adds to its own
BUILD_TMP_MB = 2048  # the private /tmp of an environment build (sdists unpack there)
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr, or folders
# What of /etc the dynamic linker, Python, TLS, name lookups and time zones read; no shadow, and not the
# machine's passwd: the sandbox gets one of its own (:func:`identity_dir`), with only the users it runs as.
ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "localtime",
    "timezone",
    "mime.types",
    "fonts",
    "os-release",
)


@dataclass(frozen=True)
class Sandbox:
    """What one trial may see. Every path appears inside at the same place as outside."""

    bwrap: str
    read_only: tuple[Path, ...]  # the interpreter and its environment, the harness, the code
    writable: tuple[Path, ...]  # the trial folder, the repository's dataset cache
    protected: tuple[Path, ...] = ()  # files inside a writable folder the training may read, not replace
    network: bool = True
    tmp_mb: int = 1024  # size of the private /tmp (memory) ...
    tmp: Path | None = None  # ... unless it is this folder (in the trial's disk quota file system)
    uid: int | None = None  # the user to drop to (mlops runs as root); None: the caller's, namespaced
    workdir: Path = Path("/tmp")
    mapped: tuple[tuple[Path, Path, bool], ...] = ()  # data: (the folder here, where it appears, writable)
    identity: Path | None = None  # a folder of passwd and group files seen as /etc/passwd and /etc/group


def _folders_above(paths: Iterable[Path]) -> list[Path]:
    """Every folder above the mount points, outermost first: bwrap makes them (world-readable)."""
    above: set[Path] = set()
    for path in paths:
        above.update(p for p in path.parents if p not in MOUNTED)
    return sorted(above, key=lambda p: (len(p.parts), str(p)))


def bwrap_argv(box: Sandbox, command: Sequence[str]) -> list[str]:
    """The bubblewrap command line that runs ``command`` in the sandbox ``box``."""
    argv = [box.bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"]
    argv += ["--unshare-uts", "--unshare-cgroup-try", "--hostname", "trial"]
    if box.uid is None:
        argv.append("--unshare-user")  # an unprivileged bwrap needs it; the caller's uid, no capabilities
    if not box.network:
        argv.append("--unshare-net")  # only a loopback interface
    size = str(box.tmp_mb * 1024 * 1024)
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if box.tmp is not None:
        argv += ["--bind", str(box.tmp), "/tmp"]
    else:
        argv += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
    argv += ["--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    argv += ["--perms", "0755", "--dir", "/etc"]  # as root bwrap makes it 0700: nobody could read /etc/ssl
    for name in ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    if box.identity is not None:  # getpass.getuser() (torch, Lightning) needs the user to have a name
        argv += ["--ro-bind", str(box.identity / "passwd"), "/etc/passwd"]
        argv += ["--ro-bind", str(box.identity / "group"), "/etc/group"]
    mounts = sorted(
        [(p, p, "--ro-bind") for p in box.read_only]
        + [(p, p, "--bind") for p in box.writable]
        + [(src, at, "--bind" if rw else "--ro-bind") for src, at, rw in box.mapped],
        key=lambda m: len(m[1].parts),  # a folder before what is mounted inside it
    )
    for folder in _folders_above(at for _, at, _ in mounts):
        argv += ["--perms", "0755", "--dir", str(folder)]
    for path, at, how in mounts:
        argv += [how, str(path), str(at)]
    for path in box.protected:
        argv += ["--ro-bind", str(path), str(path)]
    argv += ["--chdir", str(box.workdir)]
    if box.uid is not None:
        user = str(box.uid)
        argv += ["--", "setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all"]
    return [*argv, "--", *command]


def identity_text(uid: int, gid: int, name: str) -> tuple[str, str]:
    """The passwd and group files of a sandbox: root, nobody, and the user it runs as (``uid``)."""
    users = {0: ("root", 0, "/root"), TRIAL_UID: ("nobody", TRIAL_UID, "/nonexistent")}
    users.setdefault(uid, (name, gid, "/tmp"))  # noqa: S108 (its HOME, the sandbox's private /tmp)
    groups = {0: "root", TRIAL_UID: "nogroup"}
    groups.setdefault(gid, name)
    passwd = "".join(
        f"{user}:x:{number}:{group}:{user}:{home}:/usr/sbin/nologin\n"
        for number, (user, group, home) in sorted(users.items())
    )
    group = "".join(f"{g}:x:{number}:\n" for number, g in sorted(groups.items()))
    return passwd, group


def identity_dir(as_root: bool, base: Path | None = None) -> Path:
    """A folder of the sandbox's own ``passwd`` and ``group`` (the user it runs as has a name there), made
    once per user of this machine: ``<tmp>/mlops-etc-<uid>``, this user's, mode 0700, refused when someone
    else made it or it is a link. Files, not bwrap's ``--ro-bind-data``: the keeper that starts bwrap is
    another process, which an inherited descriptor would have to reach."""
    uid, gid = (TRIAL_UID, TRIAL_UID) if as_root else (os.getuid(), os.getgid())
    try:
        name = pwd.getpwuid(uid).pw_name if not as_root else "nobody"
    except KeyError:
        name = "trainer"
    folder = (base or Path(tempfile.gettempdir())) / f"mlops-etc-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeUnavailable(f"{folder} is not a folder of this user's alone: remove it")
    for file, text in zip(("passwd", "group"), identity_text(uid, gid, name), strict=True):
        path = folder / file
        try:
            same = path.read_text(encoding="utf-8") == text and not path.is_symlink()
        except OSError:
            same = False
        if not same:
            write_atomic(path, text)
    return folder


def python_roots(python: str) -> tuple[Path, ...]:
    """The folders an interpreter needs: its installation and its virtual environment, outermost only."""
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    else:
        try:
            done = subprocess.run(  # noqa: S603 (the interpreter the runtime was given)
                # -S: no .pth file of the environment runs here (a package's, or a build's), outside the sandbox
                [python, "-I", "-S", "-c", "import sys; print(sys.prefix, sys.base_prefix, sep='\\n')"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            found = set(done.stdout.split("\n")) - {""}
        except (OSError, subprocess.SubprocessError):  # it cannot run: its launch will say so
            found = set()
    found.add(os.path.dirname(os.path.dirname(os.path.realpath(python))))
    found.add(os.path.dirname(os.path.dirname(os.path.abspath(python))))  # a venv whose python is a link
    found.update(str(p) for p in based_on(Path(os.path.abspath(python)).parent.parent))
    roots = sorted({Path(os.path.realpath(p)) for p in found}, key=lambda p: len(p.parts))
    outer: list[Path] = []
    for root in roots:
        if root == Path("/usr") or root.is_relative_to("/usr"):
            continue  # the system's python: /usr is there anyway
        if not any(root.is_relative_to(o) for o in outer):
            outer.append(root)
    return tuple(outer)


def based_on(venv: Path, depth: int = 0) -> list[Path]:
    """The environments a venv's packages are layered on (``mlops-base`` in its ``pyvenv.cfg``, written by
    mlops/envs/local.py): a trial must see them too, or the base's packages are missing (issue 23)."""
    try:
        text = (venv / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return []
    bases = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == BASE_KEY and value.strip() and depth < 4:
            base = Path(value.strip())
            bases += [base, *based_on(base, depth + 1)]
    return bases


def build_sandbox(
    bwrap: str,
    read_only: tuple[Path, ...],
    writable: tuple[Path, ...],
    mapped: tuple[tuple[Path, Path, bool], ...],
    as_root: bool,
    workdir: Path,
) -> Sandbox:
    """The sandbox of an environment build (uv, and any build backend it runs): as a trial's, but never a
    network of its own (the index is reached through a proxy socket in ``mapped``), and only ``writable``
    (the environment being built and its uv cache) to write; as ``nobody`` when mlops runs as root."""
    return Sandbox(
        bwrap,
        read_only,
        writable,
        network=False,
        tmp_mb=BUILD_TMP_MB,
        uid=TRIAL_UID if as_root else None,
        workdir=workdir,
        mapped=mapped,
        identity=identity_dir(as_root),
    )


def problem(bwrap: str | None, as_root: bool) -> str | None:
    """Why the sandbox cannot run here (in one line), or None when it can."""
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)"
    box = Sandbox(bwrap, (), (), network=False, uid=TRIAL_UID if as_root else None)
    try:
        done = subprocess.run(  # noqa: S603
            bwrap_argv(box, ["true"]), capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{bwrap} does not run: {e}"
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {done.returncode}"
        hint = (
            ""
            if as_root
            else " (are unprivileged user namespaces turned off? sysctl kernel.unprivileged_userns_clone)"
        )
        return f"bubblewrap cannot make a sandbox here: {why}{hint}"
    return None


def find_bwrap() -> str | None:
    return shutil.which("bwrap")
