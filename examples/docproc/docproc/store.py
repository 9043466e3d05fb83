"""Document storage: metadata and the sealed envelope, idempotent on the idempotency key.

Two backends behind one async :class:`Store` protocol, picked by
:func:`open_store` from a URL:

- SQLite (the default, nothing to install): a file, WAL mode, every call run
  off the event loop in a thread (:mod:`docproc.store_sqlite`);
- PostgreSQL when the URL is ``postgresql://...`` (``DATABASE_URL``), through
  psycopg 3 and a small connection pool (:mod:`docproc.store_postgres`).

Both keep the same two tables: ``documents`` (one row per idempotency key,
enforced by a unique constraint, so concurrent puts from several processes end
with one row and every caller gets its id) and ``document_keywords`` (one row
per lower-cased keyword, for search). The schema is created on open by numbered
migrations recorded in ``schema_migrations``, applied under a lock so instances
opening the store at once do not race. Only the envelope (no key material) is
stored: keys stay in the key store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self
from urllib.parse import urlsplit

import orjson

from docproc.errors import RecordError, StoreError
from docproc.keystore import LEVELS

__all__ = [
    "MAX_IDS",
    "Counts",
    "Record",
    "Store",
    "StoredRecord",
    "open_store",
    "redact_url",
]

MAX_KEY_CHARS: Final = 512
MAX_IDS: Final = 256
"""Most ids one `Store.get_many` call reads (one query; SQLite binds each as a parameter)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Columns in the order both backends select them (see ``record_from_row``).
COLUMNS: Final = (
    "id",
    "idempotency_key",
    "name",
    "size",
    "sha256",
    "level",
    "topic",
    "keywords",
    "semantic",
    "risk",
    "envelope",
    "created_at",
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Record:
    """One stored document: metadata, analysis results and the sealed envelope.

    ``sha256`` is the hex digest of the plaintext, so a reader can check what it
    decrypted. ``keywords`` is kept in the given order (a tuple once built).
    """

    idempotency_key: str
    name: str
    size: int
    sha256: str
    level: str
    topic: str
    keywords: Sequence[str]
    semantic: Mapping[str, Any]
    risk: Mapping[str, Any]
    envelope: Mapping[str, Any]
    created_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
            raise RecordError(
                f"record field 'idempotency_key': expected 1..{MAX_KEY_CHARS} characters"
            )
        for name in ("name", "topic"):
            if not isinstance(getattr(self, name), str):
                raise RecordError(f"record field {name!r}: expected a string")
        if type(self.size) is not int or self.size < 0:
            raise RecordError(f"record field 'size': expected a count of bytes, got {self.size!r}")
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise RecordError("record field 'sha256': expected 64 lower-case hex digits")
        if self.level not in LEVELS:
            raise RecordError(f"record field 'level': {self.level!r} is not one of {LEVELS}")
        if isinstance(self.keywords, str) or not all(isinstance(k, str) for k in self.keywords):
            raise RecordError("record field 'keywords': expected a list of strings")
        object.__setattr__(self, "keywords", tuple(self.keywords))
        for name in ("semantic", "risk", "envelope"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise RecordError(f"record field {name!r}: expected an object")
            value = dict(value)  # a copy, so the record stays as it was stored
            object.__setattr__(self, name, value)
            try:
                json.dumps(value, allow_nan=False)  # PostgreSQL's JSONB has no NaN
            except (TypeError, ValueError) as exc:
                raise RecordError(f"record field {name!r}: not JSON-serialisable ({exc})") from None
        if not isinstance(self.created_at, datetime) or self.created_at.tzinfo is None:
            raise RecordError("record field 'created_at': expected a timezone-aware datetime")

    @classmethod
    def stored(cls, values: Mapping[str, Any]) -> Record:
        """A record as the store gives it back, without the checks: they ran at `put`."""
        record = object.__new__(cls)
        for name in _FIELDS:
            object.__setattr__(record, name, values[name])
        return record

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``created_at`` in ISO 8601)."""
        return {
            "idempotency_key": self.idempotency_key,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "level": self.level,
            "topic": self.topic,
            "keywords": list(self.keywords),
            "semantic": dict(self.semantic),
            "risk": dict(self.risk),
            "envelope": dict(self.envelope),
            "created_at": self.created_at.isoformat(),
        }

    def search_keywords(self) -> list[str]:
        """The keywords as the search table keeps them: stripped, lower-case, unique."""
        return sorted({k.strip().lower() for k in self.keywords if k.strip()})


_FIELDS: Final = tuple(f.name for f in fields(Record))


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read back, with the id the store gave it."""

    doc_id: str
    record: Record


@dataclass(frozen=True, slots=True)
class Counts:
    """How many documents there are, in total and per level and topic."""

    total: int
    by_level: dict[str, int]
    by_topic: dict[str, int]


class Store(Protocol):
    """What the store block uses; both backends implement it."""

    async def put(self, record: Record) -> tuple[str, bool]:
        """Store ``record`` once per idempotency key: (doc id, whether this call created it)."""
        ...

    async def get(self, doc_id: str) -> StoredRecord | None: ...

    async def get_many(self, doc_ids: Sequence[str]) -> list[StoredRecord]:
        """The stored documents among ``doc_ids`` in one query, in the order asked;
        unknown ids are left out (at most `MAX_IDS` ids)."""
        ...

    async def get_by_key(self, idempotency_key: str) -> StoredRecord | None: ...

    async def search(
        self,
        keyword: str | None = None,
        level: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[StoredRecord]:
        """Newest first. ``keyword`` matches any keyword containing it (case-insensitive);
        ``level`` and ``topic`` match exactly; all given filters must hold."""
        ...

    async def counts(self) -> Counts: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


async def open_store(url: str | None, *, default_path: Path) -> Store:
    """Open (and migrate) the store ``url`` names; SQLite at ``default_path`` when it is empty.

    Accepted: ``None``/``""`` (SQLite at ``default_path``), ``sqlite:///abs/path`` or
    ``sqlite:relative/path``, ``postgresql://...`` / ``postgres://...``.
    """
    if not url:
        return await _open_sqlite(default_path)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        from docproc.store_postgres import PostgresStore

        return await PostgresStore.open(url)
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise StoreError(f"store URL {url!r} names no file")
        return await _open_sqlite(Path(path))
    raise StoreError(
        f"store URL {redact_url(url)!r}: unsupported scheme {scheme!r} "
        "(expected postgresql://, sqlite: or none for the default SQLite file)"
    )


async def _open_sqlite(path: Path) -> Store:
    from docproc.store_sqlite import SqliteStore

    return await SqliteStore.open(path)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_query(level: str | None, limit: int, offset: int) -> None:
    """Reject a search the backends would answer wrongly; name the argument."""
    if level is not None and level not in LEVELS:
        raise RecordError(f"search level {level!r} is not one of {LEVELS}")
    if type(limit) is not int or not 1 <= limit <= 1000:
        raise RecordError(f"search limit {limit!r}: expected 1..1000")
    if type(offset) is not int or offset < 0:
        raise RecordError(f"search offset {offset!r}: expected 0 or more")


def like_pattern(keyword: str) -> str:
    """A LIKE pattern (escape ``\\``) matching keywords that contain ``keyword``."""
    escaped = keyword.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_sql(
    keyword: str | None, level: str | None, topic: str | None, limit: int, offset: int, *, ph: str
) -> tuple[str, list[Any]]:
    """The search query and its parameters, with ``ph`` as the backend's placeholder."""
    check_query(level, limit, offset)
    where: list[str] = []
    params: list[Any] = []
    if keyword is not None and keyword.strip():
        where.append(
            f"id IN (SELECT doc_id FROM document_keywords WHERE keyword LIKE {ph} ESCAPE '\\')"
        )
        params.append(like_pattern(keyword))
    if level is not None:
        where.append(f"level = {ph}")
        params.append(level)
    if topic is not None:
        where.append(f"topic = {ph}")
        params.append(topic)
    sql = f"SELECT {', '.join(COLUMNS)} FROM documents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq DESC LIMIT {ph} OFFSET {ph}"
    return sql, [*params, limit, offset]


# One statement, so total, per level and per topic come from the same snapshot.
COUNTS_SQL: Final = "SELECT level, topic, count(*) FROM documents GROUP BY level, topic"


def counts_from_groups(groups: Sequence[Sequence[Any]]) -> Counts:
    """Fold ``(level, topic, n)`` rows of :data:`COUNTS_SQL` into :class:`Counts`."""
    by_level: dict[str, int] = {}
    by_topic: dict[str, int] = {}
    for level, topic, n in groups:
        by_level[str(level)] = by_level.get(str(level), 0) + int(n)
        by_topic[str(topic)] = by_topic.get(str(topic), 0) + int(n)
    return Counts(sum(by_level.values()), by_level, by_topic)


def check_ids(doc_ids: Sequence[str]) -> list[str]:
    """``doc_ids`` as a list, refused (`RecordError`) when there are more than `MAX_IDS`."""
    ids = list(doc_ids)
    if len(ids) > MAX_IDS:
        raise RecordError(f"get_many: {len(ids)} ids asked for; at most {MAX_IDS} per call")
    return ids


def in_order(doc_ids: Sequence[str], found: Iterable[StoredRecord]) -> list[StoredRecord]:
    """The records of ``found`` in the order of ``doc_ids`` (each once; unknown ids dropped)."""
    by_id = {stored.doc_id: stored for stored in found}
    return [by_id[doc_id] for doc_id in dict.fromkeys(doc_ids) if doc_id in by_id]


def record_from_row(row: Sequence[Any]) -> StoredRecord:
    """Build a :class:`StoredRecord` from a row in :data:`COLUMNS` order.

    JSON columns arrive as text (SQLite) or already decoded (PostgreSQL JSONB);
    ``created_at`` as ISO text (SQLite) or a datetime (PostgreSQL). The record
    was checked field by field when it was put, so it is not checked again
    (`Record.stored`): reading costs the decoding only.
    """
    values = dict(zip(COLUMNS, row, strict=True))
    for name in ("keywords", "semantic", "risk", "envelope"):
        if isinstance(values[name], str):
            values[name] = orjson.loads(values[name])
    created = values["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    values["created_at"] = created.astimezone(UTC)
    values["keywords"] = tuple(values["keywords"])
    doc_id = values.pop("id")
    return StoredRecord(doc_id, Record.stored(values))
