"""Per-hop request tokens and end-user tokens between real TLS blocks on loopback."""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from eblocks import Context, Message
from eblocks.message import TOKEN_HEADER
from eblocks.security import Svid
from eblocks.security.local import identity_folder
from eblocks.security.tokens import ReplayCache, TokenMinter

from .secmesh import SecureMesh, make_spec

TOKENS = "security: {tokens: {mode: required}}"


async def whoami(msg: Message, ctx: Context) -> dict[str, Any]:
    return {"peer": ctx.peer, "user": ctx.user}


def _ctx(folder: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_cert_chain(folder / "svid.pem", folder / "svid.key")
    ctx.load_verify_locations(folder / "bundle.pem")
    return ctx


async def _post(
    port: int, ctx: ssl.SSLContext, headers: dict[str, str]
) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"https://127.0.0.1:{port}/", data=b"x", headers=headers, ssl=ctx) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def _cli_minter(mesh: SecureMesh, now: Callable[[], float] = time.time) -> TokenMinter:
    mesh.issuer.issue_client()
    svid = Svid.read(identity_folder(mesh.state, "cli"))
    return TokenMinter(lambda: svid, 60, now=now)


AUD_FRONT = "spiffe://eblocks.local/mesh/sec/block/front"


async def test_calls_carry_tokens_and_the_caller_is_verified(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    async def front(msg: Message, ctx: Context) -> Message:
        return await ctx.call("back", msg)

    mesh = secure_mesh(make_spec(TOKENS))
    await mesh.start("front", front)
    await mesh.start("back", whoami)
    reply = await mesh.client().call("front", Message(b"x"))
    assert reply.json() == {"peer": "spiffe://eblocks.local/mesh/sec/block/front", "user": None}


@pytest.mark.parametrize(
    ("case", "why", "message"),
    [
        ("missing", "missing", "requires a request token"),
        ("forged", "bad_signature", "signature does not verify"),
        ("expired", "expired", "has expired"),
        ("wrong_audience", "wrong_audience", "is not for"),
    ],
)
async def test_bad_tokens_are_refused_with_401(
    secure_mesh: Callable[..., SecureMesh],
    caplog: pytest.LogCaptureFixture,
    case: str,
    why: str,
    message: str,
) -> None:
    mesh = secure_mesh(make_spec(TOKENS))
    block = await mesh.start("front", whoami)
    minter = _cli_minter(mesh)
    headers: dict[str, str] = {}
    if case == "forged":
        good = minter.mint(AUD_FRONT)
        header = jwt.get_unverified_header(good)
        claims = jwt.decode(good, options={"verify_signature": False})
        other = ec.generate_private_key(ec.SECP256R1())
        headers[TOKEN_HEADER] = jwt.encode(claims, other, "ES256", headers={"x5c": header["x5c"]})
    elif case == "expired":
        headers[TOKEN_HEADER] = _cli_minter(mesh, now=lambda: time.time() - 3600).mint(AUD_FRONT)
    elif case == "wrong_audience":
        headers[TOKEN_HEADER] = minter.mint("spiffe://eblocks.local/mesh/sec/block/back")
    with caplog.at_level(logging.WARNING, logger="eblocks.audit"):
        status, got, body = await _post(
            block.port, _ctx(identity_folder(mesh.state, "cli")), headers
        )
    assert status == 401
    assert got["x-eblocks-error"] == "unauthenticated"
    assert got["x-eblocks-origin"] == "front"
    assert body["token"] == why
    assert message in body["message"]
    assert block.auth is not None
    assert block.auth.counters["unauthenticated"] == 1
    lines = [r.getMessage() for r in caplog.records]
    assert any(re.search(r"unauthenticated POST / from \S+ at front", line) for line in lines)


async def test_a_replayed_token_is_refused_when_tokens_are_single_use(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec("security: {tokens: {mode: required, reuse: false}}"))
    block = await mesh.start("front", whoami)
    token = _cli_minter(mesh).mint(AUD_FRONT)
    ctx = _ctx(identity_folder(mesh.state, "cli"))
    first = await _post(block.port, ctx, {TOKEN_HEADER: token})
    assert first[0] == 200
    assert first[2]["peer"] == "spiffe://eblocks.local/mesh/sec/client/cli"
    status, headers, body = await _post(block.port, ctx, {TOKEN_HEADER: token})
    assert (status, headers["x-eblocks-error"], body["token"]) == (
        401,
        "unauthenticated",
        "replayed",
    )


async def test_a_reused_token_is_accepted_only_from_its_holder_over_mtls(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    """``reuse`` (the default): sender-constrained over mTLS, single use over plaintext."""
    mesh = secure_mesh(make_spec("security: {mtls: permissive, tokens: {mode: required}}"))
    block = await mesh.start("front", whoami)
    minter = _cli_minter(mesh)
    token = minter.token(AUD_FRONT)
    assert minter.token(AUD_FRONT) == token  # the minter sends it again
    assert minter.token(AUD_FRONT, "alice") != token  # one per end user
    ctx = _ctx(identity_folder(mesh.state, "cli"))
    for _ in range(3):
        status, _, body = await _post(block.port, ctx, {TOKEN_HEADER: token})
        assert (status, body["peer"]) == (200, "spiffe://eblocks.local/mesh/sec/client/cli")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{block.port}/", data=b"x", headers={TOKEN_HEADER: token}
        ) as resp,
    ):  # the same token without the certificate that holds it
        assert resp.status == 401
        assert (await resp.json(content_type=None))["token"] == "replayed"
    fresh = minter.mint(AUD_FRONT)
    statuses = []
    for _ in range(2):
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{block.port}/", data=b"x", headers={TOKEN_HEADER: fresh}
            ) as resp,
        ):
            statuses.append(resp.status)
    assert statuses == [200, 401]  # over plaintext every token is single use


def test_the_minter_renews_a_reused_token_at_half_its_life(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    now = [time.time()]
    minter = _cli_minter(secure_mesh(make_spec(TOKENS)), now=lambda: now[0])
    first = minter.token(AUD_FRONT)
    now[0] += 29
    assert minter.token(AUD_FRONT) == first
    now[0] += 2
    assert minter.token(AUD_FRONT) != first


async def test_a_token_of_another_identity_on_this_connection_is_refused(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    mesh = secure_mesh(make_spec(TOKENS))
    block = await mesh.start("front", whoami)
    await mesh.start("back", whoami)
    mesh.issuer.issue_client()
    back = Svid.read(identity_folder(mesh.state, "back-0"))
    stolen = TokenMinter(lambda: back, 60).mint(AUD_FRONT)
    status, _, body = await _post(
        block.port, _ctx(identity_folder(mesh.state, "cli")), {TOKEN_HEADER: stolen}
    )
    assert (status, body["token"]) == (401, "peer_mismatch")


def test_replay_cache_is_bounded_and_forgets_expired_ids() -> None:
    now = [1000.0]
    cache = ReplayCache(3, now=lambda: now[0])
    assert cache.add("a", 1010)
    assert not cache.add("a", 1010)
    for jti in ("b", "c", "d"):
        assert cache.add(jti, 1010)
    assert len(cache) == 3  # the oldest made room
    now[0] = 2000.0
    assert cache.add("e", 2010)
    assert len(cache) == 1  # everything expired went at once


async def test_end_user_subject_is_carried_across_hops(
    secure_mesh: Callable[..., SecureMesh], tmp_path: Path
) -> None:
    idp = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(idp.public_key()))
    jwk.update(kid="k1", alg="ES256", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    spec = make_spec(
        f"""security:
  tokens: {{mode: required}}
  end_user: {{jwks_file: {tmp_path / "jwks.json"}, issuer: https://idp.test, required: true}}
"""
    )

    async def front(msg: Message, ctx: Context) -> Message:
        return await ctx.call("back", msg)

    mesh = secure_mesh(spec)
    await mesh.start("front", front)
    await mesh.start("back", whoami)
    now = int(time.time())
    user_token = jwt.encode(
        {"sub": "alice", "iss": "https://idp.test", "iat": now, "exp": now + 60, "role": "admin"},
        idp,
        "ES256",
        headers={"kid": "k1"},
    )
    client = mesh.client()
    reply = await client.call("front", Message(b"x", {"authorization": f"Bearer {user_token}"}))
    assert reply.json() == {"peer": "spiffe://eblocks.local/mesh/sec/block/front", "user": "alice"}
    from eblocks import UpstreamError

    with pytest.raises(UpstreamError) as caught:
        await client.call("front", Message(b"x"))
    assert caught.value.upstream_status == 401
    assert caught.value.detail["user_token"] == "missing"
    forged = jwt.encode(
        {"sub": "mallory", "iss": "https://idp.test", "exp": now + 60},
        ec.generate_private_key(ec.SECP256R1()),
        "ES256",
        headers={"kid": "k1"},
    )
    with pytest.raises(UpstreamError) as caught:
        await client.call("front", Message(b"x", {"authorization": f"Bearer {forged}"}))
    assert caught.value.detail["user_token"] == "invalid"
    nobody = jwt.encode(
        {"sub": "", "iss": "https://idp.test", "exp": now + 60}, idp, "ES256", headers={"kid": "k1"}
    )
    with pytest.raises(UpstreamError) as caught:
        await client.call("front", Message(b"x", {"authorization": f"Bearer {nobody}"}))
    assert caught.value.detail["user_token"] == "invalid"  # signed, but names no user
    assert "names no user" in caught.value.message
