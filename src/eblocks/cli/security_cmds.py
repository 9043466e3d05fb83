"""`eblocks ca init|inspect|rotate` and `eblocks policy check`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import orjson
import typer

from eblocks.cli.common import EXIT_INVALID, console, duration_option, fail, load_or_exit
from eblocks.cli.run_cmds import STATE_OPTION
from eblocks.errors import IdentityError, SecurityError
from eblocks.runtime import StateDir

if TYPE_CHECKING:
    from eblocks.security import MeshCA
    from eblocks.security.identity import Identity
    from eblocks.spec import MeshSpec

__all__ = ["register"]

ca = typer.Typer(
    help="The mesh CA: create, inspect, rotate; join tokens, the CA server and joining.",
    no_args_is_help=True,
)
policy = typer.Typer(help="Authorization policies: explain a decision.", no_args_is_help=True)

SPEC_ARG = typer.Argument(Path("mesh.yaml"), help="the mesh spec")
PASS_OPTION = typer.Option(
    None,
    "--passphrase-file",
    help="file holding the CA key's passphrase (or $EBLOCKS_CA_PASSPHRASE)",
)


def _ca_class() -> type[MeshCA]:
    from eblocks.security import MeshCA  # cryptography loads only for `eblocks ca ...`

    return MeshCA


def _passphrase(path: Path | None) -> bytes | None:
    if path is not None:
        try:
            return path.read_bytes().strip() or None
        except OSError as exc:
            fail(f"--passphrase-file {path}: {exc.strerror}")
    env = os.environ.get("EBLOCKS_CA_PASSPHRASE")
    return env.encode() if env else None


def _read(option: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"{option} {path}: {exc.strerror}")


def _folder(spec: Path, state_dir: Path | None) -> tuple[str, Path]:
    mesh = load_or_exit(spec)
    return mesh.security.trust_domain, StateDir.for_mesh(mesh.mesh, state_dir).path / "ca"


@ca.command("init")
def ca_init(
    spec: Path = SPEC_ARG,
    key_type: str = typer.Option("", "--key-type", help="ecdsa-p256 or ed25519 (default: spec)"),
    cert: Path | None = typer.Option(None, "--cert", help="your root or intermediate (PEM)"),
    key: Path | None = typer.Option(None, "--key", help="its private key (PEM)"),
    bundle: Path | None = typer.Option(None, "--bundle", help="root(s) above an intermediate"),
    passphrase_file: Path | None = PASS_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Create the mesh root (or adopt yours) in the mesh's state dir."""
    trust_domain, folder = _folder(spec, state_dir)
    kind = key_type or load_or_exit(spec).security.key_type
    if kind not in ("ecdsa-p256", "ed25519"):
        fail(f"--key-type: expected ecdsa-p256 or ed25519, got {kind!r}")
    key_kind: Literal["ecdsa-p256", "ed25519"] = "ed25519" if kind == "ed25519" else "ecdsa-p256"
    secret = _passphrase(passphrase_file)
    try:
        made = _ca_class().init(
            folder,
            trust_domain,
            key_type=key_kind,
            passphrase=secret,
            cert_pem=_read("--cert", cert),
            key_pem=_read("--key", key),
            bundle_pem=_read("--bundle", bundle),
            key_passphrase=secret,
        )
    except SecurityError as exc:
        fail(str(exc))
    info = made.describe()
    console.print(f"mesh CA for [bold]{trust_domain}[/] in {folder}")
    console.print(f"  {info['subject']}  sha256 {info['fingerprint_sha256']}", emoji=False)


@ca.command("inspect")
def ca_inspect(
    spec: Path = SPEC_ARG,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    passphrase_file: Path | None = PASS_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Show the CA, its anchors and the SVIDs issued under the state dir."""
    _, folder = _folder(spec, state_dir)
    try:
        info = _ca_class().load(folder, _passphrase(passphrase_file)).describe()
    except SecurityError as exc:
        fail(str(exc))
    info["svids"] = _svids(folder.parent / "identity")
    if as_json:
        typer.echo(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
        return
    for name in ("trust_domain", "key_type", "subject", "fingerprint_sha256", "not_after"):
        console.print(f"{name:20} {info[name]}", emoji=False, soft_wrap=True)
    console.print(f"{'intermediate':20} {info['intermediate']}")
    console.print(f"{'key encrypted':20} {info['key_encrypted']}")
    for anchor in info["anchors"]:
        console.print(f"{'anchor':20} {anchor['subject']}")
    for row in info["svids"]:
        console.print(f"{'svid ' + row['holder']:20} {row['id']} until {row['not_after']}")


def _svids(root: Path) -> list[dict[str, str]]:
    from eblocks.security import Svid

    rows = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()):
        try:
            svid = Svid.read(folder)
        except IdentityError:
            continue
        rows.append(
            {
                "holder": folder.name,
                "id": str(svid.identity),
                "not_after": svid.not_after.isoformat(),
            }
        )
    return rows


@ca.command("rotate")
def ca_rotate(
    spec: Path = SPEC_ARG,
    passphrase_file: Path | None = PASS_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """A new root; the old one stays trusted. A running supervisor re-issues every SVID."""
    _, folder = _folder(spec, state_dir)
    secret = _passphrase(passphrase_file)
    try:
        rotated = _ca_class().load(folder, secret).rotate(secret)
    except SecurityError as exc:
        fail(str(exc))
    fingerprint = rotated.describe()["fingerprint_sha256"]
    console.print(f"rotated: new root sha256 {fingerprint}", emoji=False, soft_wrap=True)
    console.print("the previous root stays in bundle.pem; running instances get new SVIDs")


@ca.command("token")
def ca_token(
    spec: Path = SPEC_ARG,
    block: str = typer.Option(..., "--block", help="the block the joining host will run"),
    ttl: float = typer.Option(
        "1h",
        "--ttl",
        parser=duration_option,
        help="how long the token stays valid: seconds, or 30m, 1h, 8760h",
    ),
    uses: int = typer.Option(1, "--uses", min=1, help="instances that may join with it"),
    passphrase_file: Path | None = PASS_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Make a join token: another host gets an SVID for BLOCK from `eblocks ca serve`."""
    from eblocks.security.join import make_token

    mesh = load_or_exit(spec)
    if block not in mesh.blocks:
        fail(f"--block: no block {block!r} (blocks: {', '.join(sorted(mesh.blocks))})")
    _, folder = _folder(spec, state_dir)
    try:
        token = make_token(
            _ca_class().load(folder, _passphrase(passphrase_file)), block, ttl=ttl, uses=uses
        )
    except SecurityError as exc:
        fail(str(exc))
    typer.echo(token)


@ca.command("serve")
def ca_serve(
    spec: Path = SPEC_ARG,
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8443, "--port", min=1, max=65535),
    passphrase_file: Path | None = PASS_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Run the CA role: issue SVIDs to hosts that present a join token (HTTPS)."""
    from aiohttp import web

    from eblocks.security.join import CAServer

    mesh = load_or_exit(spec)
    _, folder = _folder(spec, state_dir)
    try:
        authority = _ca_class().load(folder, _passphrase(passphrase_file))
    except SecurityError as exc:
        fail(str(exc))
    server = CAServer(authority, mesh.mesh, mesh.security.svid_ttl, folder.parent)
    console.print(f"CA role for {mesh.mesh} on https://{host}:{port} (Ctrl-C stops)")
    try:
        web.run_app(
            server.app(),
            host=host,
            port=port,
            ssl_context=server.server_ssl(),
            print=None,
            access_log=None,
            loop=asyncio.new_event_loop(),
        )
    except OSError as exc:  # the port taken, the address not this host's
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@ca.command("join")
def ca_join(
    ca_url: str = typer.Option(..., "--ca-url", help="https://HOST:PORT of `eblocks ca serve`"),
    out: Path = typer.Option(..., "--out", help="folder for svid.pem, svid.key, bundle.pem"),
    token: str = typer.Option("", "--token", help="join token (or $EBLOCKS_JOIN_TOKEN)"),
    renew: bool = typer.Option(False, "--renew", help="renew the SVID in --out instead"),
) -> None:
    """Obtain (or renew) an SVID from a CA role on another host."""
    import aiohttp

    from eblocks.security.join import join
    from eblocks.security.join import renew as renew_svid

    token = token or os.environ.get("EBLOCKS_JOIN_TOKEN", "")
    if not renew and not token:
        fail("--token (or $EBLOCKS_JOIN_TOKEN) is required to join")
    try:
        svid = asyncio.run(
            renew_svid(ca_url.rstrip("/"), out) if renew else join(ca_url.rstrip("/"), token, out)
        )
    except (SecurityError, IdentityError, OSError, aiohttp.ClientError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
    console.print(f"{svid.identity} until {svid.not_after.isoformat()} in {out}")


@policy.command("check")
def policy_check(
    spec: Path = SPEC_ARG,
    source: str = typer.Option(
        ..., "--from", help="caller: a block, client/<name> or a SPIFFE ID of the mesh"
    ),
    target: str = typer.Option(..., "--to", help="target block"),
    path: str = typer.Option(
        "/", "--path", help="the path the call is for (a mesh call's x-eblocks-path)"
    ),
    method: str = typer.Option("POST", "--method", help="HTTP method"),
    pattern: str | None = typer.Option(None, "--pattern", help="pattern the call is part of"),
    claim: list[str] = typer.Option([], "--claim", help="end-user claim name=value"),
) -> None:
    """Explain what the spec's authorization rules decide, without running anything.

    Exit 0: allowed; 1: denied; 2: the question itself is wrong (an unknown
    block, caller or pattern, a malformed method, path or claim).
    """
    mesh = load_or_exit(spec)
    if target not in mesh.blocks:
        _bad(f"--to: no block {target!r} (blocks: {', '.join(sorted(mesh.blocks))})")
    caller = _caller(source, mesh)
    if not method.isalpha():
        _bad(f"--method: expected an HTTP method such as GET or POST, got {method!r}")
    if not path:
        _bad("--path: expected the path the call is for, such as / or /admin/users")
    if pattern is not None and pattern not in mesh.patterns:
        known = ", ".join(sorted(mesh.patterns)) or "none"
        _bad(f"--pattern: no pattern {pattern!r} (patterns: {known})")
    claims: dict[str, str] = {}
    for item in claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            _bad(f"--claim {item!r}: expected name=value")
        claims[name] = value
    from eblocks.security.policy import check

    decision = check(mesh, caller, target, method=method, path=path, pattern=pattern, claims=claims)
    verdict = "[green]ALLOW[/]" if decision.allowed else "[bold red]DENY[/]"
    console.print(f"{verdict} {caller} -> {target} {method.upper()} {path}")
    console.print(f"  rule: {decision.rule}\n  why:  {decision.reason}")
    if not decision.allowed:
        raise typer.Exit(1)


def _caller(source: str, mesh: MeshSpec) -> Identity:
    from eblocks.security.policy import caller_of

    try:
        return caller_of(mesh, source)
    except IdentityError as exc:
        _bad(f"--from: {exc}")


def _bad(message: str) -> NoReturn:
    """A question `policy check` cannot answer: exit 2, apart from a deny's 1."""
    fail(message, EXIT_INVALID)


def register(app: typer.Typer) -> None:
    app.add_typer(ca, name="ca")
    app.add_typer(policy, name="policy")
