"""The multi-host path: a CA role on loopback issues SVIDs against join tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from eblocks import Block, Message
from eblocks.errors import SecurityError
from eblocks.security import Auth, MeshCA, Svid
from eblocks.security.join import CAServer, join, make_token, renew

from .secmesh import SecureMesh, make_spec


@pytest.fixture
async def ca_role(tmp_path: Path) -> AsyncIterator[tuple[str, CAServer]]:
    state = tmp_path / "ca-host"
    ca = MeshCA.init(state / "ca", "eblocks.local")
    (state / "gossip.key").write_bytes(b"k" * 32)
    server = CAServer(ca, "sec", 3600, state)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server.server_ssl())
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}", server
    await runner.cleanup()


async def test_join_issues_an_svid_for_the_tokens_block(
    ca_role: tuple[str, CAServer], tmp_path: Path
) -> None:
    url, server = ca_role
    token = make_token(server.ca, "back", uses=1)
    out = tmp_path / "host-b" / "identity" / "back-0"
    svid = await join(url, token, out)
    assert str(svid.identity) == "spiffe://eblocks.local/mesh/sec/block/back"
    assert (out / "gossip.key").read_bytes() == b"k" * 32
    assert Svid.read(out).cert == svid.cert
    openssl = shutil.which("openssl")
    if openssl is not None:
        done = await asyncio.to_thread(
            subprocess.run,
            [openssl, "verify", "-CAfile", str(out / "bundle.pem"), str(out / "svid.pem")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    records = orjson.loads((server.ca.folder / "tokens.json").read_bytes())
    assert all(token.split(".")[2] not in str(r) for r in records.values())  # only a hash
    with pytest.raises(SecurityError, match="used up"):
        await join(url, token, tmp_path / "again")
    renewed = await renew(url, out)
    assert renewed.identity == svid.identity
    assert renewed.cert.serial_number != svid.cert.serial_number
    assert server.issued == 2


async def test_join_refuses_bad_tokens(ca_role: tuple[str, CAServer], tmp_path: Path) -> None:
    url, server = ca_role
    token = make_token(server.ca, "back")
    prefix, token_id, secret, pin = token.split(".")
    with pytest.raises(SecurityError, match="unknown join token"):
        await join(url, f"{prefix}.{token_id}.wrong{secret}.{pin}", tmp_path / "a")
    with pytest.raises(SecurityError, match="pinned"):
        await join(url, f"{prefix}.{token_id}.{secret}.{'0' * 64}", tmp_path / "b")
    expired = make_token(server.ca, "back", ttl=-1)
    with pytest.raises(SecurityError, match="expired"):
        await join(url, expired, tmp_path / "c")
    with pytest.raises(SecurityError, match="looks like"):
        await join(url, "not-a-token", tmp_path / "d")
    assert server.issued == 0


async def test_renew_needs_the_current_svid(ca_role: tuple[str, CAServer], tmp_path: Path) -> None:
    url, server = ca_role
    other = MeshCA.init(tmp_path / "other", "eblocks.local")
    folder = tmp_path / "intruder"
    from eblocks.security import Identity

    svid = other.issue(Identity("eblocks.local", "sec", "back"), dt.timedelta(hours=1))
    svid.write(folder, server.ca.bundle + other.bundle)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the CA's handshake refuses the foreign cert
        await renew(url, folder)
    assert server.issued == 0


async def test_a_joined_host_serves_mtls_to_the_local_mesh(
    secure_mesh: Callable[..., SecureMesh], tmp_path: Path
) -> None:
    """Host A runs the supervisor's CA and the CA role; host B joins and serves `back`."""
    mesh = secure_mesh(make_spec())
    server = CAServer(mesh.issuer.ca(), "sec", 3600, mesh.state)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server.server_ssl())
    await site.start()
    try:
        url = f"https://127.0.0.1:{runner.addresses[0][1]}"
        folder = tmp_path / "host-b" / "back-0"
        await join(url, make_token(server.ca, "back"), folder)

        async def whoami(msg: Message) -> str:
            return "served by a joined host"

        auth = Auth(mesh.spec, folder, block="back")
        block = Block("back", whoami, settings=mesh.spec.settings("back"), auth=auth)
        await block.start("127.0.0.1", 0)
        mesh.blocks["back"] = block
        mesh.resolver.set("back", [f"127.0.0.1:{block.port}"])
        reply = await mesh.client().call("back", Message(b"x"))
        assert reply.body == b"served by a joined host"
    finally:
        await runner.cleanup()
