"""What only the PostgreSQL backend does: connection errors, redaction, the server it runs on."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from docproc.errors import StoreError
from docproc.store import open_store, redact_url

if TYPE_CHECKING:  # a conftest is not importable at run time (no package here)
    from tests.docproc.conftest import PgCluster


async def test_a_wrong_password_fails_clearly_without_echoing_it(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = pg_cluster.url().replace(pg_cluster.password, "wrong-secret")
    with pytest.raises(StoreError, match="cannot prepare PostgreSQL store") as caught:
        await open_store(url, default_path=tmp_path / "unused.db")
    assert "password authentication failed" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)
    assert ":***@127.0.0.1" in str(caught.value)


async def test_no_server_on_the_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        url = f"postgresql://docproc:pw@127.0.0.1:{port}/docs"
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}/docs.*[Cc]onnection refused"):
            await open_store(url, default_path=tmp_path / "unused.db")


async def test_schema_is_recorded_and_envelopes_are_jsonb(
    database_url: str, tmp_path: Path
) -> None:
    async with await open_store(database_url, default_path=tmp_path / "unused.db") as store:
        await store.counts()
    with psycopg.connect(database_url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert versions == [(1,)]
        kinds: dict[str, str] = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'documents'"
            ).fetchall()
        )
        assert kinds["envelope"] == "jsonb"
        assert kinds["created_at"] == "timestamp with time zone"


def test_the_test_server_listens_on_loopback_only(pg_cluster: PgCluster) -> None:
    with psycopg.connect(pg_cluster.url()) as conn:
        row = conn.execute("SHOW listen_addresses").fetchone()
    assert row == ("127.0.0.1",)


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql:///db") == "postgresql:///db"
