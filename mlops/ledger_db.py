"""The ledger's SQLite connection, and SQLite's errors said once, at this edge, as one line.

A ledger that is corrupt, locked by another program or read-only stops the command with one line that says
which and what to do (exit 2), whichever statement meets it first. ``mlops history`` and ``mlops show``
open it read-only, so they work on a workspace that cannot be written.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlops.errors import LedgerUnavailable
from mlops.layout import LEDGER

TIMEOUT_S = 30.0  # how long a statement waits for another process's write lock


# SQLite's primary result codes (https://sqlite.org/rescode.html) that say why a file cannot be used; an
# extended code (SQLITE_READONLY_DBMOVED, ...) is its primary code in the low byte.
LOCKED_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def unusable(path: Path, error: sqlite3.Error | OSError, waited_s: float = TIMEOUT_S) -> LedgerUnavailable:
    """Why the ledger at ``path`` cannot be used, from SQLite's result code (never from its words)."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in LOCKED_CODES:
        why = f"is locked by another process (waited {waited_s:g} s); end the program that holds it"
    elif primary == sqlite3.SQLITE_READONLY or not _writable(path):
        why = "is read-only: mlops run needs to write it (mlops history and mlops show only read it)"
    elif primary in CORRUPT_CODES:
        why = "is corrupt; move it away and mlops starts a new one (the run folders stay)"
    else:
        why = "cannot be opened"
    return LedgerUnavailable(f"the ledger {path} {why} (sqlite: {error})")


def _writable(path: Path) -> bool:
    """Whether the ledger and its folder (where SQLite keeps its -wal and -shm files) can be written."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


# SQLite's errors that say the file cannot be used; constraint and programming errors stay what they are.
UNUSABLE = (sqlite3.OperationalError,)


def _converted(path: Path, error: sqlite3.DatabaseError, waited_s: float) -> Exception:
    if isinstance(error, UNUSABLE) or type(error) is sqlite3.DatabaseError:
        return unusable(path, error, waited_s)
    return error


class LedgerConnection(sqlite3.Connection):
    """A connection whose statements turn SQLite's "cannot use this file" errors into LedgerUnavailable."""

    ledger_path: Path = Path(LEDGER)
    timeout_s: float = TIMEOUT_S

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as e:
            raise _converted(self.ledger_path, e, self.timeout_s) from e

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except sqlite3.DatabaseError as e:
            raise _converted(self.ledger_path, e, self.timeout_s) from e


def connect(
    path: Path, schema: str, read_only: bool = False, timeout_s: float = TIMEOUT_S
) -> sqlite3.Connection:
    """The ledger at ``path``, in WAL mode with ``schema`` made; read-only: no write at all, not even the
    schema (a ledger that does not exist yet reads as an empty one)."""
    conn: sqlite3.Connection
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path,
                timeout=timeout_s,
                isolation_level=None,
                check_same_thread=False,
                factory=LedgerConnection,
            )
        elif path.exists():
            conn = _read_only(path)
        else:
            conn = sqlite3.connect(
                ":memory:", isolation_level=None, check_same_thread=False, factory=LedgerConnection
            )
    except (sqlite3.Error, OSError) as e:
        raise unusable(path, e) from e
    assert isinstance(conn, LedgerConnection)
    conn.ledger_path = path
    conn.timeout_s = timeout_s
    conn.row_factory = sqlite3.Row
    if read_only and path.exists():
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a corrupt file says so now
        return conn
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(schema)
    return conn


def _read_only(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}"
    kwargs: dict[str, Any] = {"uri": True, "isolation_level": None, "check_same_thread": False}
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", timeout=TIMEOUT_S, factory=LedgerConnection, **kwargs)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except (sqlite3.OperationalError, LedgerUnavailable):
        # A WAL ledger in a folder that cannot be written (no -shm file can be made): read it as it is.
        return sqlite3.connect(f"{uri}?immutable=1", factory=LedgerConnection, **kwargs)
