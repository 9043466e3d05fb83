"""Where the case study keeps its data: one home directory, from the environment.

=====================  ===================================================
variable               meaning
=====================  ===================================================
``DOCPROC_HOME``       data directory (default: ``$EBLOCKS_STATE_DIR/docproc``
                       when a block runs under ``eblocks up``, else ``./.docproc``)
``DOCPROC_KEYS``       key store directory (default: ``$DOCPROC_HOME/keys``)
``DATABASE_URL``       ``postgresql://...`` to store in PostgreSQL; unset: SQLite
                       at ``$DOCPROC_HOME/docproc.sqlite3``
``DOCPROC_READER_TOKEN``  bearer token that may open high-risk documents in the UI
``DOCPROC_DECRYPT_THREADS``  envelopes one decrypt instance opens at once (default 1)
=====================  ===================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    keys: Path
    database_url: str | None
    sqlite_path: Path
    reader_token: str | None


def settings(environ: dict[str, str] | None = None) -> Settings:
    """The settings of this process, read from ``environ`` (default ``os.environ``)."""
    env = dict(os.environ) if environ is None else environ
    if env.get("DOCPROC_HOME"):
        home = Path(env["DOCPROC_HOME"])
    elif env.get("EBLOCKS_STATE_DIR"):
        home = Path(env["EBLOCKS_STATE_DIR"]) / "docproc"
    else:
        home = Path(".docproc")
    keys = Path(env["DOCPROC_KEYS"]) if env.get("DOCPROC_KEYS") else home / "keys"
    return Settings(
        home=home,
        keys=keys,
        database_url=env.get("DATABASE_URL") or None,
        sqlite_path=home / "docproc.sqlite3",
        reader_token=env.get("DOCPROC_READER_TOKEN") or None,
    )
