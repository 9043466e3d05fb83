"""The SQLite backend of :class:`docproc.store.Store`: one file, WAL mode, calls in a thread.

One connection per store, used by one thread at a time (a lock), each call run
through :func:`asyncio.to_thread` so the event loop keeps serving. Several
processes may open the same file: WAL lets readers run beside the one writer, a
30 s busy timeout makes writers queue, and every write is a ``BEGIN IMMEDIATE``
transaction, so the insert-or-return-existing of :meth:`SqliteStore.put` is
atomic across processes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, ParamSpec, Self, TypeVar

from docproc.errors import StoreError
from docproc.store import (
    COLUMNS,
    COUNTS_SQL,
    Counts,
    Record,
    StoredRecord,
    check_ids,
    counts_from_groups,
    in_order,
    record_from_row,
    search_sql,
)

__all__ = ["SqliteStore"]

P = ParamSpec("P")
T = TypeVar("T")

BUSY_TIMEOUT_S: Final = 30.0

MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE documents (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                idempotency_key TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                size INTEGER NOT NULL,
                sha256 TEXT NOT NULL,
                level TEXT NOT NULL CHECK (level IN ('low', 'medium', 'high')),
                topic TEXT NOT NULL,
                keywords TEXT NOT NULL,
                semantic TEXT NOT NULL,
                risk TEXT NOT NULL,
                envelope TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX documents_level ON documents (level, seq)",
            "CREATE INDEX documents_topic ON documents (topic, seq)",
            """CREATE TABLE document_keywords (
                keyword TEXT NOT NULL,
                doc_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
                PRIMARY KEY (keyword, doc_id)
            ) WITHOUT ROWID""",
        ),
    ),
)

_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM documents"


@contextmanager
def _transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    conn.execute(f"BEGIN {mode}")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL; the journal mode it is in afterwards.

    Switching needs an exclusive lock, and a connection whose switch could
    deadlock with another's gets "database is locked" at once, without the busy
    handler (stores opened at the same moment on a new file): try again, with a
    short pause, within the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with _transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        newest = MIGRATIONS[-1][0]
        if done and max(done) > newest:
            raise StoreError(
                f"{path}: schema version {max(done)} is newer than this code's {newest}"
            )
        for version, statements in MIGRATIONS:
            if version not in done:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)",
                    (version, datetime.now(UTC).isoformat()),
                )


class SqliteStore:
    """Documents in a SQLite file; see the module docstring for the concurrency rules."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating the file and its directory) and migrate the store at ``path``."""
        return cls(path, await asyncio.to_thread(cls._connect, path))

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc
        try:
            mode = _wal(conn)
            if mode != "wal":
                raise StoreError(f"{path}: SQLite refused WAL mode (journal_mode is {mode!r})")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL's usual setting
            conn.execute("PRAGMA foreign_keys=ON")
            _migrate(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot prepare SQLite store {path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._locked, self._conn.close)

    async def put(self, record: Record) -> tuple[str, bool]:
        return await self._run(self._put, record)

    async def get(self, doc_id: str) -> StoredRecord | None:
        return await self._run(self._one, f"{_SELECT} WHERE id = ?", doc_id)

    async def get_many(self, doc_ids: Sequence[str]) -> list[StoredRecord]:
        ids = check_ids(doc_ids)
        if not ids:
            return []
        return await self._run(self._some, ids)

    async def get_by_key(self, idempotency_key: str) -> StoredRecord | None:
        return await self._run(self._one, f"{_SELECT} WHERE idempotency_key = ?", idempotency_key)

    async def search(
        self,
        keyword: str | None = None,
        level: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[StoredRecord]:
        sql, params = search_sql(keyword, level, topic, limit, offset, ph="?")
        return await self._run(self._many, sql, params)

    async def counts(self) -> Counts:
        return await self._run(self._counts)

    # -- in the worker thread, under the lock ---------------------------------

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise StoreError(f"SQLite store {self.path} is closed")
        return await asyncio.to_thread(self._locked, functools.partial(fn, *args, **kwargs))

    def _locked(self, call: Callable[[], T]) -> T:
        with self._lock:
            try:
                return call()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def _put(self, record: Record) -> tuple[str, bool]:
        doc_id = uuid.uuid4().hex
        with _transaction(self._conn):
            inserted = self._conn.execute(
                "INSERT INTO documents (id, idempotency_key, name, size, sha256, level, topic, "
                "keywords, semantic, risk, envelope, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    doc_id,
                    record.idempotency_key,
                    record.name,
                    record.size,
                    record.sha256,
                    record.level,
                    record.topic,
                    json.dumps(list(record.keywords)),
                    json.dumps(record.semantic),
                    json.dumps(record.risk),
                    json.dumps(record.envelope),
                    record.created_at.astimezone(UTC).isoformat(),
                ),
            ).rowcount
            if inserted:
                self._conn.executemany(
                    "INSERT INTO document_keywords (keyword, doc_id) VALUES (?, ?)",
                    [(keyword, doc_id) for keyword in record.search_keywords()],
                )
                return doc_id, True
            row = self._conn.execute(
                "SELECT id FROM documents WHERE idempotency_key = ?", (record.idempotency_key,)
            ).fetchone()
            return str(row[0]), False

    def _one(self, sql: str, value: str) -> StoredRecord | None:
        row = self._conn.execute(sql, (value,)).fetchone()
        return None if row is None else record_from_row(row)

    def _some(self, doc_ids: list[str]) -> list[StoredRecord]:
        marks = ", ".join("?" * len(doc_ids))
        rows = self._conn.execute(f"{_SELECT} WHERE id IN ({marks})", doc_ids)
        return in_order(doc_ids, (record_from_row(row) for row in rows))

    def _many(self, sql: str, params: list[object]) -> list[StoredRecord]:
        return [record_from_row(row) for row in self._conn.execute(sql, params)]

    def _counts(self) -> Counts:
        return counts_from_groups(self._conn.execute(COUNTS_SQL).fetchall())
