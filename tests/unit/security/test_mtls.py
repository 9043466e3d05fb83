"""mTLS between real blocks on loopback: what is accepted, what is refused, what the client sees."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eblocks import Block, ConnectError, Context, Message, UnauthenticatedError, UpstreamError
from eblocks.block import MeshClient
from eblocks.errors import IdentityError
from eblocks.security import Auth, Identity, MeshCA
from eblocks.security.local import TRUST_SPREAD, identity_folder
from eblocks.transport import HttpTransport

from .secmesh import SecureMesh, damage_signature, make_spec


async def whoami(msg: Message, ctx: Context) -> dict[str, object]:
    return {"peer": ctx.peer, "user": ctx.user, "body": msg.body.decode()}


async def test_strict_mtls_carries_the_verified_peer_identity(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec())
    await mesh.start("front", whoami)
    reply = await mesh.client().call("front", Message(b"hi"))
    assert reply.json() == {
        "peer": "spiffe://eblocks.local/mesh/sec/client/cli",
        "user": None,
        "body": "hi",
    }
    stats = mesh.blocks["front"].auth.stats()  # type: ignore[union-attr]
    assert stats["mtls"] == "strict"
    assert stats["identity"] == "spiffe://eblocks.local/mesh/sec/block/front"


async def test_block_to_block_calls_are_mutually_authenticated(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    async def front(msg: Message, ctx: Context) -> Message:
        return await ctx.call("back", msg)

    mesh = secure_mesh(make_spec())
    await mesh.start("front", front)
    await mesh.start("back", whoami)
    reply = await mesh.client().call("front", Message(b"x"))
    assert reply.json()["peer"] == "spiffe://eblocks.local/mesh/sec/block/front"


async def _refusals(block: Block, kind: str, count: int) -> None:
    """Wait (bounded) until the server counted ``count`` refusals of ``kind``."""
    assert block.auth is not None
    for _ in range(100):
        if block.auth.counters[f"{kind}_refused"] >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"server counted {dict(block.auth.counters)}, wanted {count} {kind}")


def _audit(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "eblocks.audit"]


async def _raw_post(url: str, ctx: ssl.SSLContext | None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=b"x", ssl=ctx if ctx is not None else True) as resp,
    ):
        return resp.status, await resp.text()


async def test_no_client_certificate_is_refused_in_the_handshake(
    secure_mesh: Callable[..., SecureMesh], caplog: pytest.LogCaptureFixture
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", whoami)
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(mesh.state / "ca" / "bundle.pem")
    with pytest.raises(aiohttp.ClientError) as caught:
        await _raw_post(f"https://127.0.0.1:{block.port}/", anonymous)
    # TLS 1.3: the server's "certificate required" alert arrives after the client's Finished
    assert isinstance(caught.value, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError)
    # through the mesh transport the same refusal is a ConnectError (502 connect)
    transport = HttpTransport(ssl=anonymous)
    client = MeshClient(mesh.spec, mesh.resolver, transport=transport)
    mesh.clients.append(client)
    with pytest.raises(ConnectError, match="front"):
        await client.call("front", Message(b"x"))
    await _refusals(block, "handshake", 2)
    lines = _audit(caplog)
    assert any("refused handshake connection from 127.0.0.1:" in line for line in lines), lines
    assert any("CERTIFICATE" in line.upper() for line in lines), lines


async def test_plaintext_to_a_strict_block_is_refused(
    secure_mesh: Callable[..., SecureMesh], caplog: pytest.LogCaptureFixture
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", whoami)
    with pytest.raises(aiohttp.ClientError):
        await _raw_post(f"http://127.0.0.1:{block.port}/", None)
    plain = MeshClient(mesh.spec, mesh.resolver)  # no identity: plaintext HTTP
    mesh.clients.append(plain)
    with pytest.raises(ConnectError, match=r"spoke plaintext.*auth=Auth\.for_cli"):
        await plain.call("front", Message(b"x"))  # the error says what to do
    await _refusals(block, "plaintext", 2)
    assert any("refused plaintext connection" in line for line in _audit(caplog))


async def test_certificate_from_another_ca_is_refused(
    secure_mesh: Callable[..., SecureMesh], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", whoami)
    intruder = Auth(mesh.spec, mesh.foreign_identity(tmp_path / "intruder"))
    with pytest.raises(ConnectError, match="front"):
        await mesh.client(auth=intruder).call("front", Message(b"x"))
    await _refusals(block, "handshake", 1)
    unknown = (
        "unable to get local issuer certificate",
        "self-signed certificate in certificate chain",
    )
    assert any(why in line for line in _audit(caplog) for why in unknown)


async def test_expired_certificate_is_refused(
    secure_mesh: Callable[..., SecureMesh], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", whoami)
    ca = mesh.issuer.ca()
    folder = tmp_path / "expired"
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    ca.issue(
        Identity("eblocks.local", "sec", "cli", "client"), dt.timedelta(hours=1), now=long_ago
    ).write(folder, ca.bundle)
    with pytest.raises(ConnectError, match="front"):
        await mesh.client(auth=Auth(mesh.spec, folder)).call("front", Message(b"x"))
    await _refusals(block, "handshake", 1)
    assert any("certificate has expired" in line for line in _audit(caplog))


async def test_wrong_trust_domain_is_refused_with_401(
    secure_mesh: Callable[..., SecureMesh],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A root without name constraints (brought in) signs an ID of another trust domain."""
    mesh = secure_mesh(make_spec())
    byo = MeshCA.init(tmp_path / "byo", "eblocks.local")
    # strip the name constraint: adopt a plain root made with the same key
    unconstrained = _unconstrained_root(byo)
    ca_dir = mesh.state / "ca"
    MeshCA.init(ca_dir, "eblocks.local", cert_pem=unconstrained, key_pem=_key_pem(byo))
    await mesh.start("front", whoami)
    ca = mesh.issuer.ca()
    forged = ca.sign(
        byo.key.public_key(),
        Identity("evil.example", "sec", "cli", "client"),
        dt.timedelta(hours=1),
    )
    folder = tmp_path / "evil"
    from eblocks.security import Svid

    Svid(forged, byo.key).write(folder, ca.bundle)
    with caplog.at_level(logging.WARNING, logger="eblocks.audit"):
        client = MeshClient(
            mesh.spec, mesh.resolver, transport=HttpTransport(ssl=_client_ctx(folder))
        )
        mesh.clients.append(client)
        with pytest.raises(UpstreamError) as caught:
            await client.call("front", Message(b"x"))
    assert caught.value.upstream_status == 401
    assert caught.value.upstream_reason == "unauthenticated"
    assert caught.value.origin == "front"
    assert "outside trust domain 'eblocks.local'" in caught.value.message
    assert mesh.blocks["front"].auth.counters["unauthenticated"] == 1  # type: ignore[union-attr]
    lines = [r.getMessage() for r in caplog.records]
    assert any(re.search(r"unauthenticated POST / from \S+ at front", line) for line in lines)


def _client_ctx(folder: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_cert_chain(folder / "svid.pem", folder / "svid.key")
    ctx.load_verify_locations(folder / "bundle.pem")
    return ctx


def _key_pem(ca: MeshCA) -> bytes:

    return ca.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _unconstrained_root(ca: MeshCA) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "byo root")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca.key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


async def test_permissive_accepts_plaintext_and_counts_it(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(
        make_spec(blocks="  open: {handler: 'tests:x', security: {mtls: permissive}}")
    )
    block = await mesh.start("open", whoami)
    status, body = await _raw_post(f"http://127.0.0.1:{block.port}/", None)
    assert status == 200
    assert '"peer":null' in body
    reply = await mesh.client().call("open", Message(b"tls"))
    assert reply.json()["peer"] == "spiffe://eblocks.local/mesh/sec/client/cli"
    assert block.auth is not None
    assert block.auth.counters["plaintext_connections"] == 1


async def test_ingress_serves_tls_to_clients_without_a_certificate(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec(blocks="  gate: {handler: 'tests:x', security: {mtls: ingress}}"))
    block = await mesh.start("gate", whoami)
    browser = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # server authentication only
    browser.check_hostname = False
    browser.load_verify_locations(mesh.state / "ca" / "bundle.pem")
    status, body = await _raw_post(f"https://127.0.0.1:{block.port}/", browser)
    assert status == 200
    assert '"peer":null' in body  # no certificate, no identity
    reply = await mesh.client().call("gate", Message(b"tls"))  # a mesh caller still has one
    assert reply.json()["peer"] == "spiffe://eblocks.local/mesh/sec/client/cli"
    with pytest.raises(aiohttp.ClientError):  # plaintext is not served
        await _raw_post(f"http://127.0.0.1:{block.port}/", None)


async def test_disable_per_block_serves_plaintext_and_clients_follow(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(
        make_spec(blocks="  legacy: {handler: 'tests:x', security: {mtls: disable}}")
    )
    block = await mesh.start("legacy", whoami)
    status, _ = await _raw_post(f"http://127.0.0.1:{block.port}/", None)
    assert status == 200
    reply = await mesh.client().call("legacy", Message(b"x"))
    assert reply.json()["peer"] is None


async def test_rotation_under_steady_load_drops_nothing(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    """SVIDs and then the CA rotate while calls keep flowing: zero failures; new handshakes
    present the new certificate, open keep-alive connections keep theirs."""
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", whoami)
    client = mesh.client()
    assert block.auth is not None
    served_before = await asyncio.to_thread(_served_serial, block.port, mesh.state)
    failures: list[BaseException] = []
    done = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal done
        while not stop.is_set():
            try:
                await client.call("front", Message(b"x"))
                done += 1
            except Exception as exc:  # counted: the assertion below wants none
                failures.append(exc)

    workers = [asyncio.create_task(load()) for _ in range(4)]
    await asyncio.sleep(0.2)
    mesh.issuer.renew_due(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))  # half life passed
    assert block.auth.refresh()
    assert client.auth is not None
    assert client.auth.refresh()
    await asyncio.sleep(0.2)
    served_after = await asyncio.to_thread(_served_serial, block.port, mesh.state)
    assert served_after != served_before
    mesh.issuer.ca().rotate()
    assert mesh.issuer.renew_due()  # the supervisor notices the new root: all trust it first
    assert block.auth.refresh()
    assert client.auth.refresh()
    assert await asyncio.to_thread(_served_serial, block.port, mesh.state) == served_after
    mesh.now += TRUST_SPREAD
    assert mesh.issuer.renew_due()  # then it issues from it
    assert block.auth.refresh()
    assert client.auth.refresh()
    await asyncio.sleep(0.2)
    rotated = await asyncio.to_thread(_served_serial, block.port, mesh.state)
    assert rotated != served_after
    stop.set()
    await asyncio.gather(*workers)
    assert failures == []
    assert done > 0
    assert block.auth.counters["rotations"] == 3  # half life; the new root; an SVID from it


def _served_serial(port: int, state: Path) -> int:
    """The serial of the certificate the server presents to a new handshake."""
    import socket

    ctx = _client_ctx(identity_folder(state, "cli"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_oversized_headers_are_refused_before_any_check(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", whoami)
    ctx = _client_ctx(identity_folder(mesh.state, "front-0"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"https://127.0.0.1:{block.port}/", data=b"x", headers={"x-big": "a" * 20000}, ssl=ctx
        ) as resp,
    ):
        assert resp.status in (400, 431)
    client = mesh.client()
    with pytest.raises(UpstreamError) as caught:
        await client.call("front", Message(b"x", {"x-big": "a" * 20000}))
    assert caught.value.upstream_status in (400, 431)
    assert block.auth is not None
    assert block.auth.counters["unauthenticated"] == 0  # refused by the HTTP parser, not later


async def test_a_server_with_another_blocks_identity_is_refused_by_the_client(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    """The resolver points `back` at `front`'s port: the client notices the impostor."""
    mesh = secure_mesh(make_spec())
    front = await mesh.start("front", whoami)
    mesh.resolver.set("back", [f"127.0.0.1:{front.port}"])
    with pytest.raises(UnauthenticatedError) as caught:
        await mesh.client().call("back", Message(b"x"))
    assert caught.value.detail["server"] == "spiffe://eblocks.local/mesh/sec/block/front"
    assert "not an instance of 'back'" in caught.value.message


async def test_a_damaged_new_svid_is_refused_and_the_current_one_kept(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    """A rewritten svid.pem that no longer verifies: the block keeps serving with the SVID
    it has (TLS and tokens alike) and says why, instead of answering no handshake."""
    mesh = secure_mesh(make_spec())
    block = await mesh.start("front", whoami)
    client = mesh.client()
    assert block.auth is not None
    folder = block.auth.files.folder
    served_before = await asyncio.to_thread(_served_serial, block.port, mesh.state)
    damage_signature(folder / "svid.pem")
    with pytest.raises(IdentityError, match="does not verify against the trust bundle"):
        block.auth.refresh()
    assert await asyncio.to_thread(_served_serial, block.port, mesh.state) == served_before
    assert (await client.call("front", Message(b"x"))).body  # still reachable
    assert block.auth.counters["rotations"] == 0
