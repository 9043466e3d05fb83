"""The admin port under mTLS on real sockets: probes open, data only to the mesh's certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from eblocks import Block, Context, Message
from eblocks.security.admin import AdminAccess
from eblocks.security.local import identity_folder
from eblocks.security.tls import TlsFiles

from .secmesh import SecureMesh, make_spec


async def echo(msg: Message, ctx: Context) -> bytes:
    return msg.body


async def _get(url: str, ctx: ssl.SSLContext | None) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=ctx if ctx is not None else True) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def _anonymous(mesh: SecureMesh) -> ssl.SSLContext:
    """Server authentication only: what kubelet (or curl without --cert) does."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(mesh.state / "ca" / "bundle.pem")
    return ctx


def _cli(mesh: SecureMesh) -> AdminAccess:
    mesh.issuer.issue_client("cli")
    return AdminAccess.of(mesh.spec, mesh.state, "cli")


def _admin(block: Block, path: str, scheme: str = "https") -> str:
    return f"{scheme}://127.0.0.1:{block.admin_port}{path}"


async def _counted(block: Block, key: str, count: int) -> None:
    """Wait (bounded) until the block's Auth counted ``count`` of ``key``."""
    assert block.auth is not None
    for _ in range(100):
        if block.auth.counters[key] >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"counted {dict(block.auth.counters)}, wanted {count} {key}")


def _audit(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "eblocks.audit"]


async def test_strict_probes_answer_without_a_client_certificate(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", echo)
    for path in ("/healthz", "/readyz"):
        status, _, _ = await _get(_admin(block, path), _anonymous(mesh))
        assert status == 200, path
    assert block.auth is not None
    assert block.auth.counters["admin_unauthenticated"] == 0


async def test_strict_data_without_a_client_certificate_is_401(
    secure_mesh: Callable[..., SecureMesh], caplog: pytest.LogCaptureFixture
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", echo)
    with caplog.at_level(logging.WARNING, logger="eblocks.audit"):
        for path in ("/v1/stats", "/metrics", "/v1/config", "/v1/security"):
            status, headers, body = await _get(_admin(block, path), _anonymous(mesh))
            assert status == 401, path
            assert headers["x-eblocks-error"] == "unauthenticated"
            assert headers["x-eblocks-origin"] == "front"
            assert b"client certificate" in body
    assert block.auth is not None
    assert block.auth.counters["admin_unauthenticated"] == 4
    assert any("unauthenticated admin GET /v1/stats" in line for line in _audit(caplog))


async def test_strict_data_with_the_cli_certificate(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", echo)
    access = _cli(mesh)
    url = access.url("front", "127.0.0.1", block.admin_port, "/v1/stats")
    assert url.startswith("https://")
    async with access.session(aiohttp.ClientTimeout(total=5)) as session:
        for path in ("/v1/stats", "/metrics", "/v1/security", "/healthz"):
            async with session.get(access.url("front", "127.0.0.1", block.admin_port, path)) as r:
                assert r.status == 200, path
    assert block.auth is not None
    assert block.auth.counters["admin_unauthenticated"] == 0


async def test_a_route_added_later_is_guarded_too(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    """The guard is the app's middleware: `/v1/members` (added by discovery) needs no code."""
    mesh = secure_mesh(make_spec())
    auth = mesh.auth("front-0", "front")
    block = Block.in_mesh(
        "front", echo, app=None, client=mesh.client(auth=auth), instance="front-0", auth=auth
    )

    async def members(_: web.Request) -> web.Response:
        return web.json_response({"members": []})

    block.add_admin_get("/v1/members", members)
    async with block:
        status, _, _ = await _get(_admin(block, "/v1/members"), _anonymous(mesh))
        assert status == 401
        access = _cli(mesh)
        url = access.url("front", "127.0.0.1", block.admin_port, "/v1/members")
        status, _, body = await _get(url, access.ssl)
        assert (status, body) == (200, b'{"members": []}')


async def test_a_block_certificate_is_accepted_too(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    """Policy sync between members: a block's SVID reads another block's admin data."""
    mesh = secure_mesh(make_spec())
    front = await mesh.start("front", echo)
    back = await mesh.start("back", echo)
    assert back.auth is not None
    access = AdminAccess(mesh.spec, back.auth.files)
    status, _, _ = await _get(
        access.url("front", "127.0.0.1", front.admin_port, "/v1/stats"), access.ssl
    )
    assert status == 200


async def test_certificate_from_another_ca_fails_the_handshake(
    secure_mesh: Callable[..., SecureMesh], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CERT_OPTIONAL still verifies a certificate that is shown: refused below HTTP."""
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", echo)
    intruder = AdminAccess(mesh.spec, TlsFiles(mesh.foreign_identity(tmp_path / "intruder")))
    with pytest.raises(aiohttp.ClientError) as caught:
        await _get(_admin(block, "/v1/stats"), intruder.ssl)
    # TLS 1.3: the server's alert arrives after the client's Finished, so no HTTP answer
    assert isinstance(caught.value, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError)
    await _counted(block, "admin_handshake_refused", 1)
    assert block.auth is not None
    assert block.auth.counters["admin_unauthenticated"] == 0  # never reached HTTP
    assert any("refused admin_handshake connection" in line for line in _audit(caplog))


async def test_plaintext_to_a_strict_admin_port_is_refused(
    secure_mesh: Callable[..., SecureMesh], caplog: pytest.LogCaptureFixture
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", echo)
    for path in ("/healthz", "/v1/stats"):
        with pytest.raises(aiohttp.ClientError):
            await _get(_admin(block, path, "http"), None)
    await _counted(block, "admin_plaintext_refused", 2)
    assert any("refused admin_plaintext connection" in line for line in _audit(caplog))


async def test_permissive_admin_serves_probes_in_plaintext_and_data_over_mtls(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(
        make_spec(blocks="  open: {handler: 'tests:x', security: {mtls: permissive}}")
    )
    block = await mesh.start("open", echo)
    status, _, _ = await _get(_admin(block, "/healthz", "http"), None)
    assert status == 200
    status, headers, _ = await _get(_admin(block, "/v1/stats", "http"), None)
    assert (status, headers["x-eblocks-error"]) == (401, "unauthenticated")
    access = _cli(mesh)
    url = access.url("open", "127.0.0.1", block.admin_port, "/v1/stats")
    assert url.startswith("https://")
    status, _, _ = await _get(url, access.ssl)
    assert status == 200
    assert block.auth is not None
    assert block.auth.counters["admin_plaintext_connections"] == 2
    assert block.auth.counters["admin_unauthenticated"] == 1
    assert block.auth.counters["plaintext_connections"] == 0  # the PM port's count is its own


async def test_disable_admin_is_plaintext_as_before(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(
        make_spec(blocks="  legacy: {handler: 'tests:x', security: {mtls: disable}}")
    )
    block = await mesh.start("legacy", echo)
    access = _cli(mesh)
    url = access.url("legacy", "127.0.0.1", block.admin_port, "/v1/stats")
    assert url.startswith("http://")
    status, _, _ = await _get(url, None)
    assert status == 200


async def test_a_block_without_auth_serves_plaintext() -> None:
    async with Block("plain", echo) as block:
        status, _, _ = await _get(_admin(block, "/v1/stats", "http"), None)
        assert status == 200


async def test_the_admin_context_is_reloaded_on_rotation(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", echo)
    assert block.auth is not None
    before = await asyncio.to_thread(_served_serial, block.admin_port, mesh.state)
    mesh.issuer.renew_due(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert block.auth.refresh()
    after = await asyncio.to_thread(_served_serial, block.admin_port, mesh.state)
    assert after != before


def _served_serial(port: int, state: Path) -> int:
    from cryptography import x509

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(state / "ca" / "bundle.pem")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_admin_urls_follow_each_blocks_mode(tmp_path: Path) -> None:
    spec = make_spec(
        blocks="  open: {handler: 'tests:x', security: {mtls: permissive}}\n"
        "  legacy: {handler: 'tests:x', security: {mtls: disable}}"
    )
    access = AdminAccess(spec, None)
    assert access.url("front", "::1", 9, "/v1/stats") == "http://[::1]:9/v1/stats"  # no identity
    from eblocks.security import LocalIssuer

    LocalIssuer(spec, tmp_path).issue_client("cli")
    access = AdminAccess.of(spec, tmp_path, "cli")
    assert access.ssl is not None
    assert access.url("front", "127.0.0.1", 9, "/x") == "https://127.0.0.1:9/x"
    assert access.url("open", "::1", 9, "/x") == "https://[::1]:9/x"
    assert access.url("legacy", "127.0.0.1", 9, "/x") == "http://127.0.0.1:9/x"
    row = {"block": "front", "host": "127.0.0.1", "admin_port": 7}
    assert access.row_url(row, "/readyz") == "https://127.0.0.1:7/readyz"


def test_a_mesh_without_mtls_needs_no_identity(tmp_path: Path) -> None:
    spec = make_spec(extra="security: {mtls: disable}")
    access = AdminAccess.of(spec, tmp_path, "cli")  # no identity folder: none needed
    assert access.ssl is None
    assert access.url("front", "127.0.0.1", 9, "/x") == "http://127.0.0.1:9/x"
    assert not identity_folder(tmp_path, "cli").exists()
