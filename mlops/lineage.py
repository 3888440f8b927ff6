"""A script's identity across commits: its lineage.

The runs of one script path in one repository (and branch) form its lineage. Each run is linked, when it
is made, to the run of the same script at the commit before (``previous``); a rename git follows between
those commits (``git diff --find-renames``) keeps the link, so the lineage keeps its key (``script_key``).
A run whose trials were seeded by an earlier run's (warm start) names it (``warm_from``).

The links are a table of their own beside the runs; a ledger made before it gets the table, and its
runs their links, the first time it is opened for writing and asked (:func:`backfill`). A read-only
ledger without the table is answered from the same rules, in memory.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlops.config import child_env
from mlops.ledger import Ledger, RunRecord
from mlops.ledger.events import Followed, LedgerEventKind
from mlops.pull import Checkout, mirror_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS lineage (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    script_key TEXT NOT NULL, repo TEXT NOT NULL, branch TEXT, path TEXT NOT NULL,
    previous TEXT REFERENCES runs(id), warm_from TEXT REFERENCES runs(id)
);
CREATE INDEX IF NOT EXISTS lineage_key ON lineage(script_key);
"""
GIT_TIMEOUT_S = 60
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# How many of the most recent other commits of a repository are looked at for a script's previous run.
LOOK_BACK = 50


@dataclass(frozen=True)
class Link:
    """Where one run stands in its script's lineage."""

    run_id: str
    script_key: str  # the same for every run of the script, renames followed
    repo: str  # the repository (its mirror's name), or the run's source when it was not pulled
    branch: str | None  # None: not known (a commit or tag named, a detached HEAD): matches any
    path: str  # the script's path inside the repository at the run's commit
    previous: str | None  # the run of the same script at the commit before, if any
    warm_from: str | None = None  # the run whose trials seeded this one, if any


@dataclass(frozen=True)
class _Place:
    repo: str
    mirror: Path | None
    path: str


# -- the API ----------------------------------------------------------------------------------------


def record(ledger: Ledger, run: RunRecord, branch: str | None = None) -> Link:
    """Link a new run to its script's previous run (once; a run linked before keeps its link)."""
    _ensure(ledger)
    known = link_of(ledger, run.id)
    if known is not None:
        return known
    found = _compute(ledger, run, branch)
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO lineage (run_id, script_key, repo, branch, path, previous) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (found.run_id, found.script_key, found.repo, found.branch, found.path, found.previous),
        )
        if found.previous:
            ledger._event(
                conn,
                run.id,
                None,
                LedgerEventKind.LINEAGE,
                f"run {run.id} follows run {found.previous} of {found.script_key}",
                Followed(found.previous, found.script_key),
            )
    return link_of(ledger, run.id) or found


def link_of(ledger: Ledger, run_id: str) -> Link | None:
    """The run's recorded link, or None (not recorded yet, or a ledger from before lineage)."""
    if not _has_table(ledger):
        return None
    row = ledger.conn.execute("SELECT * FROM lineage WHERE run_id = ?", (run_id,)).fetchone()
    return Link(**dict(row)) if row else None


def link(ledger: Ledger, run: RunRecord) -> Link:
    """The run's link: recorded, recorded now (a run from before lineage), or computed (read-only)."""
    known = link_of(ledger, run.id)
    if known is not None:
        return known
    if _writable(ledger):
        backfill(ledger)
        return link_of(ledger, run.id) or record(ledger, run)
    return _in_memory(ledger)[run.id]


def previous_run(ledger: Ledger, run: RunRecord) -> RunRecord | None:
    """The run of the same script at the commit before this run's, or None for the first."""
    before = link(ledger, run).previous
    return ledger.run(before) if before else None


def lineage(ledger: Ledger, script_key: str) -> list[RunRecord]:
    """Every run of the script, oldest first."""
    if _writable(ledger):
        backfill(ledger)
    if _has_table(ledger):
        rows = ledger.conn.execute(
            "SELECT l.run_id FROM lineage l JOIN runs r ON r.id = l.run_id "
            "WHERE l.script_key = ? ORDER BY r.seq",
            (script_key,),
        ).fetchall()
        return [ledger.run(row["run_id"]) for row in rows]
    links = _in_memory(ledger)
    return [r for r in ledger.runs() if links[r.id].script_key == script_key]


def script_key(ledger: Ledger, run: RunRecord) -> str:
    return link(ledger, run).script_key


def set_warm_from(ledger: Ledger, run: RunRecord, earlier: RunRecord) -> None:
    """Record that ``earlier``'s trials seeded ``run``'s search."""
    link(ledger, run)
    with ledger.transaction() as conn:
        conn.execute("UPDATE lineage SET warm_from = ? WHERE run_id = ?", (earlier.id, run.id))


def warm_from(ledger: Ledger, run: RunRecord) -> RunRecord | None:
    """The run whose trials seeded this one, or None."""
    known = link_of(ledger, run.id)
    return ledger.run(known.warm_from) if known and known.warm_from else None


def backfill(ledger: Ledger) -> int:
    """Link every run that has no link yet, oldest first (a ledger from before lineage); how many."""
    _ensure(ledger)
    linked = {row["run_id"] for row in ledger.conn.execute("SELECT run_id FROM lineage")}
    missing = [r for r in ledger.runs() if r.id not in linked]
    for run in missing:
        record(ledger, run, _branch_of_ref(run.ref, None))
    return len(missing)


def branch_of(checkout: Checkout) -> str | None:
    """The branch a checkout was pulled from: the ref when it names a branch; for a local repository
    pulled as it is, its current branch; else None (a tag, a commit, a detached HEAD: unknown)."""
    mirror = mirror_of(checkout.root)
    if checkout.ref is not None:
        return _branch_of_ref(checkout.ref, mirror)
    folder = Path(checkout.source)
    folder = folder if folder.is_dir() else folder.parent
    if not folder.is_dir():
        return None
    name = _git(folder, "symbolic-ref", "--short", "-q", "HEAD")
    return name.strip() or None if name is not None else None


# -- how a link is found ----------------------------------------------------------------------------


def _compute(
    ledger: Ledger, run: RunRecord, branch: str | None, known: dict[str, Link] | None = None
) -> Link:
    place = _place(ledger, run)
    earlier = _earlier(ledger, run, place, branch, known)
    previous = _previous(run, place, earlier)
    key = previous[1].script_key if previous else _new_key(place, branch)
    return Link(run.id, key, place.repo, branch, place.path, previous[0].id if previous else None)


def _place(ledger: Ledger, run: RunRecord) -> _Place:
    pulled = ledger.find_pull(run.source, run.commit)
    if pulled is None:
        return _Place(run.source, None, run.script)
    root = Path(pulled["path"])
    try:
        path = (run.code_dir / run.script).relative_to(root).as_posix()
    except ValueError:
        path = run.script
    mirror = mirror_of(root)
    return _Place(mirror.stem, mirror if mirror.is_dir() else None, path)


Linked = tuple[RunRecord, Link]


def _earlier(
    ledger: Ledger, run: RunRecord, place: _Place, branch: str | None, known: dict[str, Link] | None
) -> list[Linked]:
    """The runs before this one in the same repository and branch at another commit, newest first."""
    found: list[Linked] = []
    for other in reversed([r for r in ledger.runs() if r.seq < run.seq and r.commit != run.commit]):
        other_link = known.get(other.id) if known is not None else link_of(ledger, other.id)
        if other_link is None or other_link.repo != place.repo:
            continue
        if branch and other_link.branch and branch != other_link.branch:
            continue
        found.append((other, other_link))
    return found


def _previous(run: RunRecord, place: _Place, earlier: list[Linked]) -> Linked | None:
    """The newest earlier run of this script (its path at that commit, renames followed), one whose commit
    is an ancestor of this run's preferred (a run of an amended or rebased commit otherwise)."""
    commits = list(dict.fromkeys(other.commit for other, _ in earlier))
    matches: list[Linked] = []
    for commit in commits[:LOOK_BACK]:
        old_path = _renamed_from(place.mirror, commit, run.commit).get(place.path, place.path)
        matches += [e for e in earlier if e[0].commit == commit and e[1].path == old_path][:1]
    for match in matches:
        if _is_ancestor(place.mirror, match[0].commit, run.commit):
            return match
    return matches[0] if matches else None


def _new_key(place: _Place, branch: str | None) -> str:
    return f"{place.repo}:{place.path}" + (f"@{branch}" if branch else "")


def _in_memory(ledger: Ledger) -> dict[str, Link]:
    """Every run's link, computed without writing (a read-only ledger from before lineage)."""
    links: dict[str, Link] = {}
    for run in ledger.runs():
        links[run.id] = _compute(ledger, run, _branch_of_ref(run.ref, None), links)
    return links


# -- git ----------------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str | None:
    """git's output, or None when it fails (a mirror gone, a commit not in it)."""
    env = child_env(GIT_TERMINAL_PROMPT="0")
    try:
        done = subprocess.run(  # noqa: S603
            ["git", *args], cwd=cwd, env=env, capture_output=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def _renamed_from(mirror: Path | None, old: str, new: str) -> dict[str, str]:
    """{path at ``new``: path at ``old``} for every file git finds renamed between the two commits."""
    if mirror is None:
        return {}
    out = _git(mirror, "diff", "--find-renames", "--name-status", "-z", old, new, "--")
    if not out:
        return {}
    fields = out.split("\0")
    renamed: dict[str, str] = {}
    i = 0
    while i < len(fields) - 1:
        status = fields[i]
        if status.startswith(("R", "C")):
            if status.startswith("R"):
                renamed[fields[i + 2]] = fields[i + 1]
            i += 3
        else:
            i += 2
    return renamed


def _is_ancestor(mirror: Path | None, old: str, new: str) -> bool:
    return mirror is not None and _git(mirror, "merge-base", "--is-ancestor", old, new) is not None


def _branch_of_ref(ref: str | None, mirror: Path | None) -> str | None:
    if not ref or SHA_RE.match(ref):
        return None
    name = ref.removeprefix("refs/heads/")
    if mirror is None:
        return name if ref.startswith("refs/heads/") else None
    return name if _git(mirror, "show-ref", "--verify", "-q", f"refs/heads/{name}") is not None else None


# -- the table ----------------------------------------------------------------------------------------


def _has_table(ledger: Ledger) -> bool:
    row = ledger.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lineage'"
    ).fetchone()
    return row is not None


def _writable(ledger: Ledger) -> bool:
    return not ledger.read_only


def _ensure(ledger: Ledger) -> None:
    if not _has_table(ledger):
        with ledger.lock:
            ledger.conn.executescript(SCHEMA)
