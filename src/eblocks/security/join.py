"""The multi-host path to an identity: a CA role that issues SVIDs against join tokens.

The root key stays on the CA host. An operator makes a join token for a block
(`eblocks ca token --block B`), hands it to the new host, and that host runs
`eblocks ca join --ca-url https://CA:PORT --token T --out DIR`::

    joiner                                   CA role (`eblocks ca serve`)
      GET  /v1/bundle  ------------------->   the trust bundle (public)
      check: a root in it has the sha256 pinned in the token (no trust on first use)
      POST /v1/join {token, csr}  -- TLS verified against that bundle -->
                                              token: known, unexpired, uses left;
                                              CSR signature valid -> SVID for the
                                              token's block, TTL = security.svid_ttl
      <- {svid, bundle, identity, gossip_key?}
      POST /v1/renew {csr}  -- mTLS with the current SVID -->  same identity, new SVID

The private key is made on the joining host and never travels. A join token
is ``eb1.<id>.<secret>.<root sha256>``; the CA keeps only a hash of the secret
(``ca/tokens.json``). The gossip key (``<state>/gossip.key``), when the CA host
has one, travels with the SVID so a joined host can take part in gossip.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from eblocks.errors import SecurityError
from eblocks.security.ca import MeshCA, new_key
from eblocks.security.svid import Identity, Svid, load_certs, write_private
from eblocks.security.tls import peer_identity

__all__ = ["CAServer", "JoinToken", "join", "make_token", "renew"]

_PREFIX = "eb1"
_TOKENS = "tokens.json"


class JoinToken:
    """A parsed join token: which record, its secret and the pinned root."""

    def __init__(self, text: str) -> None:
        parts = text.strip().split(".")
        if len(parts) != 4 or parts[0] != _PREFIX:
            raise SecurityError("a join token looks like eb1.<id>.<secret>.<root sha256>")
        self.id, self.secret, self.root_sha256 = parts[1], parts[2], parts[3]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _root_pin(ca: MeshCA) -> str:
    return ca.anchors[0].fingerprint(hashes.SHA256()).hex()


def make_token(ca: MeshCA, block: str, *, ttl: float = 3600.0, uses: int = 1) -> str:
    """Record a new join token for ``block`` in the CA folder and return it."""
    Identity(ca.trust_domain, "m", block)  # same charset checks as an identity
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    records = _load_tokens(ca.folder)
    records[token_id] = {
        "block": block,
        "sha256": _digest(secret),
        "expires": time.time() + ttl,
        "uses": uses,
    }
    write_private(ca.folder / _TOKENS, orjson.dumps(records, option=orjson.OPT_INDENT_2))
    return f"{_PREFIX}.{token_id}.{secret}.{_root_pin(ca)}"


def _load_tokens(folder: Path) -> dict[str, Any]:
    try:
        data = orjson.loads((folder / _TOKENS).read_bytes())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


class CAServer:
    """The CA role: an aiohttp app that issues SVIDs for join tokens and renews them."""

    def __init__(self, ca: MeshCA, mesh: str, svid_ttl: float, state: Path) -> None:
        self.ca = ca
        self.mesh = mesh
        self.ttl = dt.timedelta(seconds=svid_ttl)
        self.state = state
        self.issued = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/v1/bundle", self._bundle)
        app.router.add_post("/v1/join", self._join)
        app.router.add_post("/v1/renew", self._renew)
        return app

    def server_ssl(self) -> ssl.SSLContext:
        """TLS for the CA role itself: its own SVID (``client/ca``); client certs optional."""
        identity = Identity(self.ca.trust_domain, self.mesh, "ca", "client")
        folder = self.state / "identity" / "ca-server"
        self.ca.issue(identity, self.ttl).write(folder, self.ca.bundle)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.verify_mode = ssl.CERT_OPTIONAL  # /v1/join has no client cert yet; /v1/renew does
        ctx.load_cert_chain(folder / "svid.pem", folder / "svid.key")
        ctx.load_verify_locations(cafile=str(folder / "bundle.pem"))
        return ctx

    async def _bundle(self, _: web.Request) -> web.Response:
        return web.Response(body=self.ca.bundle, content_type="application/x-pem-file")

    async def _join(self, request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            token = JoinToken(str(body.get("token", "")))
        except SecurityError as exc:
            return _refuse(401, str(exc))
        records = _load_tokens(self.ca.folder)
        record = records.get(token.id)
        if record is None or not hmac.compare_digest(record["sha256"], _digest(token.secret)):
            return _refuse(401, "unknown join token")
        if record["expires"] < time.time():
            return _refuse(401, "the join token has expired")
        if record["uses"] < 1:
            return _refuse(401, "the join token is used up")
        identity = Identity(self.ca.trust_domain, self.mesh, record["block"])
        answer = self._issue(body, identity)
        if isinstance(answer, web.Response):
            return answer
        record["uses"] -= 1
        write_private(self.ca.folder / _TOKENS, orjson.dumps(records, option=orjson.OPT_INDENT_2))
        return web.json_response(answer)

    async def _renew(self, request: web.Request) -> web.Response:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_object is None or not ssl_object.getpeercert():
            return _refuse(401, "renewal needs the current SVID as client certificate")
        identity = peer_identity(ssl_object)
        if identity.mesh != self.mesh or identity.kind != "block":
            return _refuse(403, f"{identity} is not a block of mesh {self.mesh!r}")
        answer = self._issue(await _json(request), identity)
        return answer if isinstance(answer, web.Response) else web.json_response(answer)

    def _issue(self, body: dict[str, Any], identity: Identity) -> dict[str, Any] | web.Response:
        try:
            csr = x509.load_pem_x509_csr(str(body.get("csr", "")).encode())
        except ValueError as exc:
            return _refuse(400, f"csr: {exc}")
        if not csr.is_signature_valid:
            return _refuse(400, "csr: the signature does not verify")
        cert = self.ca.sign(csr.public_key(), identity, self.ttl)
        chain = (cert, *self.ca.chain_to_root)
        self.issued += 1
        answer: dict[str, Any] = {
            "identity": str(identity),
            "svid": b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain).decode(),
            "bundle": self.ca.bundle.decode(),
        }
        gossip = self.state / "gossip.key"
        if gossip.exists():
            answer["gossip_key"] = base64.b64encode(gossip.read_bytes()).decode()
        return answer


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _csr(key: Any) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    hash_alg = None if type(key).__name__.startswith("Ed25519") else hashes.SHA256()
    return builder.sign(key, hash_alg).public_bytes(serialization.Encoding.PEM).decode()


async def join(ca_url: str, token_text: str, out: Path, *, key_type: str = "ecdsa-p256") -> Svid:
    """Obtain an SVID from the CA role with a join token; write it to ``out``."""
    token = JoinToken(token_text)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # the bundle is fetched unverified, then pinned: a root in it must match the token
        async with session.get(f"{ca_url}/v1/bundle", ssl=False) as resp:
            bundle = await resp.read()
        anchors = load_certs(bundle)
        if not any(a.fingerprint(hashes.SHA256()).hex() == token.root_sha256 for a in anchors):
            raise SecurityError(f"{ca_url} does not serve the root pinned in the join token")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=bundle.decode())
        key = new_key("ed25519" if key_type == "ed25519" else "ecdsa-p256")
        payload = {"token": token_text.strip(), "csr": _csr(key)}
        async with session.post(f"{ca_url}/v1/join", json=payload, ssl=ctx) as resp:
            answer = await resp.json(content_type=None)
            if resp.status != 200:
                raise SecurityError(f"the CA refused to join: {answer.get('error', resp.status)}")
    return _store(answer, key, out)


async def renew(ca_url: str, folder: Path) -> Svid:
    """A new SVID for the identity in ``folder``, authenticated by the current one (mTLS)."""
    current = Svid.read(folder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_cert_chain(folder / "svid.pem", folder / "svid.key")
    ctx.load_verify_locations(cafile=str(folder / "bundle.pem"))
    key = new_key("ed25519" if type(current.key).__name__.startswith("Ed25519") else "ecdsa-p256")
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(f"{ca_url}/v1/renew", json={"csr": _csr(key)}, ssl=ctx) as resp,
    ):
        answer = await resp.json(content_type=None)
        if resp.status != 200:
            raise SecurityError(f"the CA refused to renew: {answer.get('error', resp.status)}")
    return _store(answer, key, folder)


def _store(answer: dict[str, Any], key: Any, out: Path) -> Svid:
    certs = load_certs(str(answer["svid"]).encode())
    svid = Svid(certs[0], key, tuple(certs[1:]))
    svid.write(out, str(answer["bundle"]).encode())
    if "gossip_key" in answer:
        write_private(out / "gossip.key", base64.b64decode(answer["gossip_key"]))
    return svid
