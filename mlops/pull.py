"""Job 1: get the pushed code at one commit into the workspace.

A source is a git URL or a local path (a repository, a folder or a file inside one). Each repository is
kept as one bare mirror under ``<workspace>/repos``; each commit is exported once, read-only in spirit,
under ``<workspace>/checkouts``. The same commit pulled twice is not cloned or exported twice. Processes
pulling into one workspace at once take turns per mirror (a file lock beside it). git gets ``--`` before
every URL and speaks only the protocols of :data:`GIT_PROTOCOLS`. A pull that fails is an event in the
ledger (``pull-failed``), which ``mlops history`` shows until the same source is pulled.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.config import child_env
from mlops.errors import PullError
from mlops.layout import RunLayout, WorkspaceLayout
from mlops.ledger import Ledger, LedgerEventKind, RunRecord
from mlops.ledger.events import PullFailed

GIT_TIMEOUT_S = 300
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
GIT_PROTOCOLS = "file:git:http:https:ssh"  # GIT_ALLOW_PROTOCOL: no ext::, no fd::


@dataclass(frozen=True)
class Checkout:
    source: str  # as the user named it (a URL, or the absolute local path)
    ref: str | None
    commit: str
    author: str
    message: str
    root: Path  # the exported tree of the whole repository at that commit
    subdir: str  # the folder inside the repository the user pointed at ("" for all of it)
    entry: str | None  # a single file the user pointed at, relative to root
    reused: bool  # True when this commit was already in the workspace
    dirty: bool = False  # a local source had uncommitted changes, which are not part of the run

    @property
    def code_dir(self) -> Path:
        return self.root / self.subdir if self.subdir else self.root


def mirror_of(root: Path) -> Path:
    """The mirror a checkout's tree was exported from (``<workspace>/checkouts/<mirror>/<commit>``)."""
    return WorkspaceLayout(root.parent.parent.parent).mirror(root.parent.name)


def _git(*args: str, cwd: Path | None = None, source: str = "", input_bytes: bytes | None = None) -> bytes:
    env = child_env(
        GIT_TERMINAL_PROMPT="0",
        GIT_SSH_COMMAND="ssh -o BatchMode=yes -o ConnectTimeout=15",
        GIT_ALLOW_PROTOCOL=GIT_PROTOCOLS,
    )
    try:
        done = subprocess.run(  # noqa: S603
            ["git", *args], cwd=cwd, env=env, capture_output=True, timeout=GIT_TIMEOUT_S, input=input_bytes
        )
    except subprocess.TimeoutExpired as e:
        raise PullError(source, f"git {args[0]} did not answer within {GIT_TIMEOUT_S} s") from e
    except FileNotFoundError as e:
        raise PullError(source, "git is not installed") from e
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise PullError(source, lines[-1] if lines else f"git {args[0]} failed ({done.returncode})")
    return done.stdout


def _repo_key(url: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")) or "repo"
    return f"{name}-{hashlib.sha1(url.encode()).hexdigest()[:10]}"  # noqa: S324 (a name, not security)


def _resolve_local(source: str) -> tuple[str, str, str | None, str | None, bool]:
    """(repository root, subdir, single file, HEAD commit, dirty) for a local path."""
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise PullError(source, "no such file or folder, and not a git URL")
    folder = path if path.is_dir() else path.parent
    try:
        top = _git("rev-parse", "--show-toplevel", cwd=folder, source=source).decode().strip()
    except PullError:
        raise PullError(source, "not a git repository (run git init and commit, or give a git URL)") from None
    try:
        head = _git("rev-parse", "HEAD", cwd=folder, source=source).decode().strip()
    except PullError:
        raise PullError(source, "the repository has no commit yet") from None
    rel = folder.relative_to(top).as_posix()
    entry = path.relative_to(top).as_posix() if path.is_file() else None
    status = _git("status", "--porcelain", "--", str(folder), cwd=folder, source=source).decode()
    return top, "" if rel == "." else rel, entry, head, bool(status.strip())


@contextmanager
def _turn(mirror: Path) -> Iterator[None]:
    """This process's turn at a mirror and its checkouts: another one pulling the same waits."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with open(mirror.with_name(mirror.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def failed_pulls(ledger: Ledger) -> list[dict[str, Any]]:
    """The pulls that failed and whose source was not pulled since, oldest first."""
    open_failures: dict[tuple[str, str | None], dict[str, Any]] = {}
    for event in ledger.events():
        data = event.data or {}
        if event.kind == LedgerEventKind.PULL_FAILED:
            open_failures[(data.get("source", ""), data.get("commit"))] = {**data, "at": event.at}
        elif event.kind == LedgerEventKind.PULL:
            for key in [
                k for k in open_failures if k[0] == data.get("source") and k[1] in (None, data.get("commit"))
            ]:
                del open_failures[key]
    return list(open_failures.values())


def pull(source: str, ref: str | None, workspace: Path, ledger: Ledger) -> Checkout:
    """Fetch ``source`` at ``ref`` (a branch, tag or commit; default: what is checked out, or HEAD).

    A failure is recorded in the ledger (``pull-failed``) before PullError goes up."""
    try:
        return _pull(source, ref, workspace, ledger)
    except PullError as e:
        commit = ref if ref and SHA_RE.match(ref) else None
        failed = PullFailed(source, ref, commit, e.reason)
        ledger.event(None, None, LedgerEventKind.PULL_FAILED, str(e), failed)
        raise


def _pull(source: str, ref: str | None, workspace: Path, ledger: Ledger) -> Checkout:
    if source.startswith("-") or "\0" in source:
        raise PullError(source, "not a git URL or a path (it starts with '-' or holds a NUL byte)")
    if ref is not None and (not ref or ref.startswith("-") or any(c < " " for c in ref)):
        raise PullError(source, f"{ref!r} is not a branch, tag or commit name")
    is_local = "://" not in source and not re.match(r"^[\w.-]+@[\w.-]+:", source)
    subdir, entry, local_head, dirty = "", None, None, False
    if is_local:
        url, subdir, entry, local_head, dirty = _resolve_local(source)
        source_id = str(Path(source).expanduser().resolve())
    else:
        url = source_id = source

    # A commit pulled before is not fetched again.
    wanted = ref if ref and SHA_RE.match(ref) else (local_head if ref is None else None)
    if wanted:
        known = ledger.find_pull(source_id, wanted)
        if known and Path(known["path"]).is_dir():
            return Checkout(
                source_id,
                ref,
                wanted,
                known["author"],
                known["message"] or "",
                Path(known["path"]),
                subdir,
                entry,
                reused=True,
                dirty=dirty,
            )

    mirror = WorkspaceLayout(workspace).mirror(_repo_key(url))
    with _turn(mirror):
        return _fetch(
            source, ref, workspace, ledger, url, mirror, (source_id, subdir, entry, local_head, dirty)
        )


def _fetch(
    source: str,
    ref: str | None,
    workspace: Path,
    ledger: Ledger,
    url: str,
    mirror: Path,
    local: tuple[str, str, str | None, str | None, bool],
) -> Checkout:
    source_id, subdir, entry, local_head, dirty = local
    if mirror.exists():
        _git("remote", "update", "--prune", cwd=mirror, source=source)
    else:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = mirror.with_name(mirror.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _git("clone", "--mirror", "--quiet", "--", url, str(tmp), source=source)
        tmp.rename(mirror)
    if local_head and ref is None:
        try:
            _git("cat-file", "-e", f"{local_head}^{{commit}}", cwd=mirror, source=source)
        except PullError:  # a detached HEAD that no branch holds
            _git("fetch", "--quiet", "--", url, local_head, cwd=mirror, source=source)

    target = local_head if (ref is None and local_head) else (ref or "HEAD")
    try:
        commit = (
            _git("rev-parse", "--verify", f"{target}^{{commit}}", cwd=mirror, source=source).decode().strip()
        )
    except PullError:
        raise PullError(source, f"no branch, tag or commit named {target!r}") from None
    author, _, message = (
        _git("log", "-1", "--format=%an <%ae>%n%s", commit, cwd=mirror, source=source)
        .decode(errors="replace")
        .partition("\n")
    )

    root = WorkspaceLayout(workspace).checkout(mirror.stem, commit)
    reused = root.is_dir()
    if not reused:
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = _git("archive", "--format=tar", commit, cwd=mirror, source=source)
        try:
            _export(archive, tmp, source)
        except PullError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(root)
    if subdir and not (root / subdir).is_dir():
        raise PullError(source, f"{subdir} is not in commit {commit[:12]} (is it committed?)")
    if entry and not (root / entry).is_file():
        raise PullError(source, f"{entry} is not in commit {commit[:12]} (is it committed?)")
    ledger.record_pull(source_id, ref, commit, author.strip(), message.strip(), root)
    return Checkout(
        source_id, ref, commit, author.strip(), message.strip(), root, subdir, entry, reused, dirty
    )


def _export(archive: bytes, folder: Path, source: str) -> None:
    """The tree of ``git archive`` into ``folder``: its symbolic links kept when they lead inside it, the
    pull refused (one line naming the first link) when one leads outside or is absolute. Each link is
    checked where it lands, after every other is in place, so no chain of links gets past."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")  # refuses absolute and outward links as it goes
    except tarfile.FilterError as e:
        member = e.tarinfo
        if member.issym() or member.islnk():
            raise PullError(source, _outside(member.name, member.linkname)) from None
        raise PullError(source, f"{member.name!r} cannot be exported ({e})") from None
    except (tarfile.TarError, OSError) as e:
        raise PullError(source, f"the commit could not be exported: {e}") from None
    top = Path(os.path.realpath(folder))
    for here, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(here, name)
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(top):
                raise PullError(source, _outside(path.relative_to(folder).as_posix(), os.readlink(path)))


def _outside(name: str, target: str) -> str:
    return (
        f"{name!r} is a symbolic link to {target!r}, outside the repository "
        "(a link in a push must point inside it)"
    )


def commit_best(
    source: str, commit: str, path_in_repo: str, text: str, branch: str, message: str, workspace: Path
) -> str:
    """Commit ``text`` as ``path_in_repo`` on top of ``commit``, on ``branch`` of the user's repository.

    The commit is made with git's plumbing in a private index, so the user's working tree, index and
    current branch are never touched; the branch pushed is never overwritten (a branch name under
    ``mlops/``). A local repository gets the branch directly; a remote one gets it pushed.
    """
    if not branch.startswith("mlops/"):
        raise PullError(source, f"refusing to commit the best model to {branch!r}: only mlops/ branches")
    is_local = "://" not in source and not re.match(r"^[\w.-]+@[\w.-]+:", source)
    if is_local:
        folder = Path(source) if Path(source).is_dir() else Path(source).parent
        repo = Path(_git("rev-parse", "--show-toplevel", cwd=folder, source=source).decode().strip())
        git_dir = Path(_git("rev-parse", "--absolute-git-dir", cwd=repo, source=source).decode().strip())
    else:
        git_dir = WorkspaceLayout(workspace).mirror(_repo_key(source))
    index = WorkspaceLayout(workspace).git_index(branch)
    env_args = ("--git-dir", str(git_dir))

    def run_git(*args: str, stdin: bytes | None = None) -> str:
        env = child_env(GIT_INDEX_FILE=str(index))
        done = subprocess.run(
            ["git", *env_args, *args],
            env=env,
            input=stdin,
            capture_output=True,  # noqa: S603
            timeout=GIT_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise PullError(source, done.stderr.decode(errors="replace").strip().splitlines()[-1])
        return done.stdout.decode().strip()

    try:
        run_git("read-tree", commit)
        blob = run_git("hash-object", "-w", "--stdin", stdin=text.encode("utf-8"))
        mode = "100644"
        run_git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path_in_repo}")
        tree = run_git("write-tree")
        new = run_git("commit-tree", tree, "-p", commit, "-m", message)
        run_git("update-ref", f"refs/heads/{branch}", new)
        if not is_local:
            run_git("push", "--quiet", "origin", f"refs/heads/{branch}:refs/heads/{branch}")
    finally:
        index.unlink(missing_ok=True)
    return new


def publish_best(ledger: Ledger, run: RunRecord, workspace: Path) -> str | None:
    """Commit the run's best source to branch mlops/best-<run> (never the pushed branch), once.

    Returns the line to show, or None when it was committed before. A notebook's best source is
    committed beside it as ``<notebook>.py``, the script that trained; the notebook is left untouched.
    """
    if not run.best_trial or run.best_metric is None:  # none, or trial 0: the code as pushed, nothing new
        return None
    branch = f"mlops/best-{run.id}"
    if ledger.run(run.id).best_commit is not None:
        return None
    pulled = ledger.find_pull(run.source, run.commit)
    root = Path(pulled["path"]) if pulled else run.code_dir
    path_in_repo = (run.code_dir / run.script).relative_to(root).as_posix()
    if path_in_repo.endswith(".ipynb"):
        path_in_repo += ".py"
    message = (
        f"mlops: best model of run {run.id} ({run.metric} {run.best_metric:.4f}, "
        f"trial {run.best_trial})\n\n" + "\n".join(ledger.trial(run.id, run.best_trial).changes)
    )
    best = RunLayout(run.dir).best_source.read_text(encoding="utf-8")
    sha = commit_best(run.source, run.commit, path_in_repo, best, branch, message, workspace)
    ledger.set_best_commit(run.id, branch, sha, f"best source committed to {branch} as {sha[:12]}")
    return f"   best source committed to branch {branch} ({sha[:12]})"
