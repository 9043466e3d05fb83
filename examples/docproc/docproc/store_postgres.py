"""The PostgreSQL backend of :class:`docproc.store.Store`, through psycopg 3 (D?: driver).

A small async connection pool serves the calls. Opening migrates the schema on
one direct connection first, so a wrong URL or a refused connection fails at
once with libpq's reason, and under a transaction-scoped advisory lock, so
instances opening the store at once apply each migration exactly once.
:meth:`PostgresStore.put` is ``INSERT ... ON CONFLICT (idempotency_key) DO
NOTHING RETURNING id``: under READ COMMITTED a concurrent insert of the same
key makes it wait for that transaction, then do nothing, and the following
``SELECT`` sees the winner's row.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Final, Self

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

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
    redact_url,
    search_sql,
)

__all__ = ["PostgresStore"]

CONNECT_TIMEOUT_S: Final = 10
# pg_advisory_xact_lock key for migrations: "docproc" in ASCII, any fixed int64 will do.
_MIGRATION_LOCK: Final = 0x646F6370726F63

MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE documents (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                idempotency_key TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                size BIGINT NOT NULL,
                sha256 TEXT NOT NULL,
                level TEXT NOT NULL CHECK (level IN ('low', 'medium', 'high')),
                topic TEXT NOT NULL,
                keywords JSONB NOT NULL,
                semantic JSONB NOT NULL,
                risk JSONB NOT NULL,
                envelope JSONB NOT NULL,
                created_at TIMESTAMPTZ NOT NULL
            )""",
            "CREATE INDEX documents_level ON documents (level, seq)",
            "CREATE INDEX documents_topic ON documents (topic, seq)",
            """CREATE TABLE document_keywords (
                keyword TEXT NOT NULL,
                doc_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
                PRIMARY KEY (keyword, doc_id)
            )""",
        ),
    ),
)

_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM documents"

Pool = AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]


class PostgresStore:
    """Documents in PostgreSQL; see the module docstring for the concurrency rules."""

    def __init__(self, url: str, pool: Pool) -> None:
        self.url = redact_url(url)
        self._pool = pool
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, max_connections: int = 4) -> PostgresStore:
        """Connect, migrate, then open a pool of up to ``max_connections``."""
        where = redact_url(url)
        try:
            await _migrate(url)
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare PostgreSQL store {where}: {exc}") from exc
        pool: Pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=False,
            name="docproc-store",
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"cannot open a connection pool to {where}: {exc}") from exc
        return cls(url, pool)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

    async def put(self, record: Record) -> tuple[str, bool]:
        doc_id = uuid.uuid4().hex
        async with self._connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "INSERT INTO documents (id, idempotency_key, name, size, sha256, level, topic, "
                "keywords, semantic, risk, envelope, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                (
                    doc_id,
                    record.idempotency_key,
                    record.name,
                    record.size,
                    record.sha256,
                    record.level,
                    record.topic,
                    Jsonb(list(record.keywords)),
                    Jsonb(dict(record.semantic)),
                    Jsonb(dict(record.risk)),
                    Jsonb(dict(record.envelope)),
                    record.created_at,
                ),
            )
            if await cursor.fetchone() is not None:
                async with conn.cursor() as keywords:
                    await keywords.executemany(
                        "INSERT INTO document_keywords (keyword, doc_id) VALUES (%s, %s)",
                        [(keyword, doc_id) for keyword in record.search_keywords()],
                    )
                return doc_id, True
            cursor = await conn.execute(
                "SELECT id FROM documents WHERE idempotency_key = %s", (record.idempotency_key,)
            )
            row = await cursor.fetchone()
        if row is None:  # the winning row vanished between the two statements
            raise StoreError(f"{self.url}: document {record.idempotency_key!r} was deleted")
        return str(row[0]), False

    async def get(self, doc_id: str) -> StoredRecord | None:
        return await self._one(f"{_SELECT} WHERE id = %s", doc_id)

    async def get_many(self, doc_ids: Sequence[str]) -> list[StoredRecord]:
        ids = check_ids(doc_ids)
        if not ids:
            return []
        async with self._connection() as conn:
            cursor = await conn.execute(f"{_SELECT} WHERE id = ANY(%s)", (ids,))
            rows = await cursor.fetchall()
        return in_order(ids, (record_from_row(row) for row in rows))

    async def get_by_key(self, idempotency_key: str) -> StoredRecord | None:
        return await self._one(f"{_SELECT} WHERE idempotency_key = %s", idempotency_key)

    async def search(
        self,
        keyword: str | None = None,
        level: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[StoredRecord]:
        sql, params = search_sql(keyword, level, topic, limit, offset, ph="%s")
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            return [record_from_row(row) for row in await cursor.fetchall()]

    async def counts(self) -> Counts:
        async with self._connection() as conn:
            cursor = await conn.execute(COUNTS_SQL)
            return counts_from_groups(await cursor.fetchall())

    async def _one(self, sql: str, value: str) -> StoredRecord | None:
        async with self._connection() as conn:
            cursor = await conn.execute(sql, (value,))
            row = await cursor.fetchone()
        return None if row is None else record_from_row(row)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        """A pooled connection; psycopg errors become :class:`StoreError` naming the server."""
        if self._closed:
            raise StoreError(f"PostgreSQL store {self.url} is closed")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self.url}: {exc}") from exc


async def _migrate(url: str) -> None:
    conn = await psycopg.AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
    async with conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        done = {int(row[0]) for row in await cursor.fetchall()}
        newest = MIGRATIONS[-1][0]
        if done and max(done) > newest:
            raise StoreError(
                f"{redact_url(url)}: schema version {max(done)} is newer than this code's {newest}"
            )
        for version, statements in MIGRATIONS:
            if version not in done:
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                )
