"""`eblocks docproc keys init|list`: create and inspect the local key store."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import typer

from docproc.errors import KeyStoreError

__all__ = ["keys"]

keys = typer.Typer(
    help="The key store: one RSA key pair per risk level and an Ed25519 signing key.",
    no_args_is_help=True,
)

DirOption = typer.Option(..., "--dir", "-d", help="Key store directory (created mode 0700).")


@keys.command("init")
def init(directory: Path = DirOption) -> None:
    """Create every missing key (RSA-4096 takes a few seconds); existing keys are kept."""
    from docproc.keystore import KeyStore  # cryptography: only for these commands

    started = time.perf_counter()
    try:
        kids = KeyStore(directory).ensure()
    except KeyStoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for slot, kid in kids.items():
        typer.echo(f"{slot:<8} {kid}")
    typer.echo(f"key store {directory} ready in {time.perf_counter() - started:.1f} s")


@keys.command("list")
def list_keys(
    directory: Path = DirOption,
    as_json: bool = typer.Option(False, "--json", help="One JSON array instead of a table."),
) -> None:
    """Show each slot's key id and algorithm (never key material); creates nothing."""
    from docproc.keystore import KeyStore

    try:
        infos = KeyStore(directory).describe()
    except KeyStoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        rows = [{**asdict(info), "path": str(info.path)} for info in infos]
        typer.echo(json.dumps(rows, indent=2))
        return
    for info in infos:
        typer.echo(f"{info.slot:<8} {info.algorithm:<9} {info.kid}  {info.path}")
