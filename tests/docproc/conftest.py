"""Fixtures of the docproc tests: a shared key store, a throwaway PostgreSQL server and a corpus.

RSA-4096 generation takes seconds, so one key store serves the whole session.
The PostgreSQL cluster is real (Debian's ``postgresql``, installed by
``scripts/system-deps.sh``): ``initdb`` in a temporary directory, the server on
a free loopback port with password authentication, one fresh database per test,
and everything stopped and deleted at the end. initdb refuses to run as root, so
as root the server runs as the ``postgres`` user, which is given the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from docproc.corpus import CorpusStats, generate
from docproc.keystore import KeyStore
from docproc.store import Store, open_store

PG_USER = "docproc"
START_ATTEMPTS = 3
# Speed over durability: the cluster is thrown away after the session.
PG_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """A key store with all four keys, created once for the session."""
    store = KeyStore(tmp_path_factory.mktemp("docproc") / "keys")
    store.ensure()
    return store


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    pytest.fail("PostgreSQL server not installed: run scripts/system-deps.sh (Debian postgresql)")


def _version_key(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgCluster:
    """A running throwaway cluster; ``url(db)`` connects to database ``db`` as superuser."""

    bindir: Path
    root: Path
    port: int
    password: str
    as_postgres: bool

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.as_postgres:
            shutil.chown(pwfile, "postgres")
        done = self.run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stderr}")

    def start(self) -> None:
        """Start on a free port; another process may take the port first, so retry."""
        errors = []
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            options = [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                *(f"-c {setting}" for setting in PG_SETTINGS),
            ]
            log = self.root / "server.log"
            done = self.run(
                "pg_ctl", "-D", str(self.data), "-l", str(log), "-o", " ".join(options),
                "-w", "-t", "60", "start",
            )  # fmt: skip
            if done.returncode == 0:
                return
            errors.append(done.stderr + (log.read_text() if log.exists() else ""))
        raise RuntimeError("PostgreSQL did not start:\n" + "\n---\n".join(errors))

    def stop(self) -> None:
        """Stop the server (immediate), killing the postmaster if pg_ctl cannot."""
        done = self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        pidfile = self.data / "postmaster.pid"
        if done.returncode != 0 and pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), 9)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server of our own for the session, deleted afterwards."""
    bindir = _pg_bindir()
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="docproc-pg-"))
    cluster = PgCluster(bindir, root, 0, secrets.token_urlsafe(18), as_postgres)
    try:
        if as_postgres:
            shutil.chown(root, "postgres", "postgres")
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster; dropped after the test."""
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield pg_cluster.url(name)
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """``None`` (the default SQLite file) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("database_url")
    return url


@pytest.fixture
async def store(store_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each backend (the same suite runs on both)."""
    opened = await open_store(store_url, default_path=tmp_path / "docs.db")
    async with opened:
        yield opened


CORPUS_COUNT = 200
CORPUS_SEED = 7


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusStats]:
    """The first 200 documents of the default corpus (``--seed 7``), generated once."""
    out = tmp_path_factory.mktemp("corpus")
    return out, generate(out, CORPUS_COUNT, CORPUS_SEED)
