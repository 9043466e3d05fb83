"""The document store, the same suite on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from docproc.envelope import Envelope, open_envelope, seal
from docproc.errors import RecordError, StoreError
from docproc.keystore import KeyStore
from docproc.store import MAX_IDS, Record, Store, open_store

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENVELOPE = {"version": 1, "level": "low", "kid": "rsa2048-x", "note": "not opened here"}


def make(key: str, **fields: Any) -> Record:
    """A valid record keyed ``key``; ``fields`` override the defaults."""
    text = f"text of {key}".encode()
    values: dict[str, Any] = {
        "idempotency_key": key,
        "name": f"{key}.txt",
        "size": len(text),
        "sha256": hashlib.sha256(text).hexdigest(),
        "level": "low",
        "topic": "finance",
        "keywords": ["Quarterly Report", "revenue"],
        "semantic": {"language": "en", "scores": [0.5, 0.25]},
        "risk": {"level": "low", "criteria": {"emails": 0}},
        "envelope": ENVELOPE,
        "created_at": T0,
    }
    values.update(fields)
    return Record(**values)


async def test_put_then_get_returns_the_record(store: Store) -> None:
    record = make("doc-1")
    doc_id, created = await store.put(record)
    assert created
    got = await store.get(doc_id)
    assert got is not None
    assert got.doc_id == doc_id
    assert got.record == record
    assert await store.get_by_key("doc-1") == got
    assert await store.get("no-such-id") is None
    assert await store.get_by_key("no-such-key") is None


async def test_get_many_reads_in_the_order_asked_and_leaves_out_unknown_ids(
    store: Store,
) -> None:
    ids = [(await store.put(make(f"doc-{i}", topic=f"t{i}")))[0] for i in range(5)]
    wanted = [ids[3], "no-such-id", ids[0], ids[4], ids[3]]

    got = await store.get_many(wanted)

    assert [stored.doc_id for stored in got] == [ids[3], ids[0], ids[4]]
    assert got == [await store.get(doc_id) for doc_id in (ids[3], ids[0], ids[4])]
    assert got[0].record.topic == "t3"
    assert await store.get_many([]) == []
    assert await store.get_many(["nothing", "here"]) == []


async def test_get_many_refuses_more_ids_than_one_query_takes(store: Store) -> None:
    with pytest.raises(RecordError, match=f"at most {MAX_IDS}"):
        await store.get_many([f"id-{i}" for i in range(MAX_IDS + 1)])


async def test_a_second_put_with_the_same_key_returns_the_first(store: Store) -> None:
    first_id, created = await store.put(make("doc-1", topic="finance"))
    assert created
    again_id, again_created = await store.put(make("doc-1", topic="health", level="high"))
    assert (again_id, again_created) == (first_id, False)
    got = await store.get_by_key("doc-1")
    assert got is not None
    assert (got.record.topic, got.record.level) == ("finance", "low")
    assert (await store.counts()).total == 1


async def test_concurrent_puts_of_one_key_make_one_row(store: Store) -> None:
    results = await asyncio.gather(*(store.put(make("same", name=f"n{i}")) for i in range(20)))
    assert len({doc_id for doc_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert (await store.counts()).total == 1


# Each writer opens the store itself and puts the same keys in its own order.
WRITER = """
import asyncio, hashlib, json, random, sys
from datetime import UTC, datetime
from pathlib import Path
from docproc.store import Record, open_store

async def main(url: str, keys: int, seed: int) -> None:
    order = list(range(keys))
    random.Random(seed).shuffle(order)
    out = {}
    async with await open_store(url, default_path=Path("unused.db")) as store:
        for n in order:
            digest = hashlib.sha256(b"%d" % n).hexdigest()
            record = Record(f"k{n}", f"n{n}", 1, digest, "medium", f"t{n % 3}", [f"w{n}"],
                            {}, {}, {"seed": seed}, datetime.now(UTC))
            out[f"k{n}"] = await store.put(record)
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def test_concurrent_puts_from_several_processes(
    store_url: str | None, tmp_path: Path
) -> None:
    url = store_url or f"sqlite:{tmp_path / 'shared.db'}"
    keys, writers = 40, 3
    command = [sys.executable, "-c", WRITER, url, str(keys)]
    procs = [
        await asyncio.create_subprocess_exec(
            *command, str(seed), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for seed in range(writers)
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
            assert proc.returncode == 0, err.decode()
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for n in range(keys):
        answers = [output[f"k{n}"] for output in outputs]
        assert len({doc_id for doc_id, _ in answers}) == 1, answers
        assert sum(created for _, created in answers) == 1, answers
    async with await open_store(url, default_path=tmp_path / "unused.db") as store:
        counts = await store.counts()
        assert counts.total == keys
        assert counts.by_level == {"medium": keys}
        assert len(await store.search(keyword="w1", limit=100)) == 11  # w1, w10..w19


async def _fill(store: Store) -> dict[str, str]:
    specs = [
        ("a", "low", "finance", ["Quarterly Report", "revenue"]),
        ("b", "medium", "health", ["patient record", "Revenue cycle"]),
        ("c", "high", "finance", ["IBAN", "wire transfer"]),
        ("d", "high", "legal", ["contract", "100% liability", "non_disclosure"]),
        ("e", "low", "legal", []),
    ]
    ids = {}
    for minute, (key, level, topic, keywords) in enumerate(specs):
        created_at = T0 + timedelta(minutes=minute)
        record = make(key, level=level, topic=topic, keywords=keywords, created_at=created_at)
        ids[key], _ = await store.put(record)
    return ids


async def _keys(store: Store, **query: Any) -> list[str]:
    return [found.record.idempotency_key for found in await store.search(**query)]


async def test_search_filters_and_orders_newest_first(store: Store) -> None:
    await _fill(store)
    assert await _keys(store) == ["e", "d", "c", "b", "a"]
    assert await _keys(store, keyword="revenue") == ["b", "a"]
    assert await _keys(store, keyword="REPORT") == ["a"]
    assert await _keys(store, keyword="  iban ") == ["c"]
    assert await _keys(store, keyword="nothing like it") == []
    assert await _keys(store, level="high") == ["d", "c"]
    assert await _keys(store, topic="finance") == ["c", "a"]
    assert await _keys(store, keyword="revenue", level="low", topic="finance") == ["a"]
    assert await _keys(store, keyword="") == ["e", "d", "c", "b", "a"]


async def test_search_treats_like_wildcards_as_text(store: Store) -> None:
    await _fill(store)
    assert await _keys(store, keyword="100%") == ["d"]
    assert await _keys(store, keyword="%") == ["d"]
    assert await _keys(store, keyword="non_d") == ["d"]
    assert await _keys(store, keyword="_") == ["d"]


async def test_search_pages(store: Store) -> None:
    await _fill(store)
    assert await _keys(store, limit=2) == ["e", "d"]
    assert await _keys(store, limit=2, offset=2) == ["c", "b"]
    assert await _keys(store, limit=2, offset=4) == ["a"]
    assert await _keys(store, offset=5) == []


async def test_search_rejects_bad_arguments(store: Store) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"level": "urgent"}, "search level 'urgent'"),
        ({"limit": 0}, "search limit 0"),
        ({"limit": 5000}, "search limit 5000"),
        ({"offset": -1}, "search offset -1"),
    ]
    for query, message in cases:
        with pytest.raises(RecordError, match=message):
            await store.search(**query)


async def test_counts_by_level_and_topic(store: Store) -> None:
    empty = await store.counts()
    assert (empty.total, empty.by_level, empty.by_topic) == (0, {}, {})
    await _fill(store)
    counts = await store.counts()
    assert counts.total == 5
    assert counts.by_level == {"low": 2, "medium": 1, "high": 2}
    assert counts.by_topic == {"finance": 2, "health": 1, "legal": 2}


async def test_a_sealed_document_survives_the_store(store: Store, keystore: KeyStore) -> None:
    plaintext = "Überweisung an DE89 3704 0044 0532 0130 00 — vertraulich\n".encode() * 50
    key = "upload-7f3a"
    sealed = seal(plaintext, "high", keystore, aad=key.encode())
    record = make(
        key,
        size=len(plaintext),
        sha256=hashlib.sha256(plaintext).hexdigest(),
        level="high",
        envelope=sealed.to_dict(),
    )
    doc_id, _ = await store.put(record)
    got = await store.get(doc_id)
    assert got is not None
    opened = open_envelope(Envelope.from_dict(got.record.envelope), keystore, aad=key.encode())
    assert opened == plaintext
    assert hashlib.sha256(opened).hexdigest() == got.record.sha256


async def test_reopening_keeps_the_documents_and_the_schema(
    store_url: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "reopen.db"
    async with await open_store(store_url, default_path=path) as first:
        doc_id, _ = await first.put(make("kept"))
    async with await open_store(store_url, default_path=path) as second:
        got = await second.get(doc_id)
        assert got is not None
        assert got.record == make("kept")
        assert await second.put(make("kept")) == (doc_id, False)


async def test_a_closed_store_says_so(store_url: str | None, tmp_path: Path) -> None:
    opened = await open_store(store_url, default_path=tmp_path / "closed.db")
    await opened.close()
    await opened.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="is closed"):
        await opened.counts()


def test_records_are_checked_field_by_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"idempotency_key": ""}, "'idempotency_key'"),
        ({"idempotency_key": "k" * 513}, "'idempotency_key'"),
        ({"size": -1}, "'size'"),
        ({"size": 1.5}, "'size'"),
        ({"sha256": "ABC"}, "'sha256'"),
        ({"level": "urgent"}, "'level'"),
        ({"keywords": "one string"}, "'keywords'"),
        ({"keywords": ["ok", 3]}, "'keywords'"),
        ({"semantic": ["not", "a", "dict"]}, "'semantic'"),
        ({"risk": {"when": datetime.now(UTC)}}, "'risk': not JSON"),
        ({"semantic": {"score": float("nan")}}, "'semantic': not JSON"),
        ({"created_at": datetime(2026, 1, 1)}, "'created_at'"),  # naive on purpose
        ({"name": None}, "'name'"),
    ]
    for fields, message in cases:
        with pytest.raises(RecordError, match=f"record field {message}"):
            make("k", **fields)
    assert make("k", keywords=["b", "a"]).keywords == ("b", "a")
    assert make("k", keywords=[" Big Data ", "big data", ""]).search_keywords() == ["big data"]
    assert make("k").to_dict()["created_at"] == "2026-11-22T08:00:00+00:00"


async def test_open_store_names_unsupported_urls(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported scheme 'mysql'") as caught:
        await open_store("mysql://app:hunter2@db/docs", default_path=tmp_path / "x.db")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(StoreError, match="names no file"):
        await open_store("sqlite:", default_path=tmp_path / "x.db")


async def test_sqlite_store_uses_wal_and_the_url_forms(tmp_path: Path) -> None:
    for url, path in [
        (None, tmp_path / "default" / "docs.db"),
        (f"sqlite:{tmp_path / 'plain.db'}", tmp_path / "plain.db"),
        (f"sqlite:///{tmp_path / 'triple.db'}", tmp_path / "triple.db"),
    ]:
        async with await open_store(url, default_path=tmp_path / "default" / "docs.db") as store:
            await store.put(make("k"))
        assert path.exists()
        assert path.read_bytes()[18:20] == b"\x02\x02"  # file format bytes 2/2 = WAL


async def test_stores_opened_at_once_migrate_once(store_url: str | None, tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    opened = await asyncio.gather(*(open_store(store_url, default_path=path) for _ in range(4)))
    try:
        puts = await asyncio.gather(*(s.put(make("one")) for s in opened))
        assert sum(created for _, created in puts) == 1
        assert len({doc_id for doc_id, _ in puts}) == 1
    finally:
        for each in opened:
            await each.close()
