"""Ingress and egress gateways in a running mesh (mTLS on), driven with `curl` from outside.

The ingress gateway serves the operator's certificate (made here, self-signed
for ``localhost``), verifies end-user JWTs against a JWKS file, routes by path
to blocks and answers CORS preflights. The egress gateway lets a block fetch
from an "external" HTTP server (a ``python -m http.server`` on loopback) and
refuses every host not on its allow-list.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .helpers import Sandbox, wait_for

pytestmark = pytest.mark.integration

HANDLERS = '''\
"""Blocks behind the gateways."""

import json

from eblocks import Context, Message


async def echo(msg: Message, ctx: Context) -> bytes:
    return json.dumps(
        {
            "path": msg.headers.get("x-eblocks-path"),
            "user": ctx.user,
            "body": msg.body.decode(),
            "leaked": sorted(h for h in msg.headers if h in ("authorization", "x-eblocks-stage")),
        }
    ).encode()


async def wrap(msg: Message, ctx: Context) -> bytes:
    return b"wrapped:" + msg.body


async def fetch(msg: Message, ctx: Context) -> Message:
    url = msg.body.decode()
    reply = await ctx.call(
        "outbound",
        Message(b"", {"x-eblocks-egress-url": url, "x-eblocks-egress-method": "GET"}),
    )
    status = reply.headers["x-eblocks-egress-status"]
    return Message(reply.body, {"x-fetched-status": status})
'''


MTLS_SERVER = """
import functools, http.server, ssl, sys

port, ca, cert, key, root = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED  # only clients with a certificate of our CA
ctx.load_verify_locations(ca)
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _partner_pki(folder: Path) -> None:
    """An outside partner's CA, its server certificate, and the client certificate it issued us."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, san in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(_pem(key))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _operator_cert(folder: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "edge.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "edge.key").write_bytes(_pem(key))


class Gateways:
    """The running mesh, the IdP's key and a curl helper."""

    def __init__(
        self,
        sandbox: Sandbox,
        folder: Path,
        port: int,
        idp: ec.EllipticCurvePrivateKey,
        partner_port: int,
    ) -> None:
        self.sandbox = sandbox
        self.folder = folder
        self.port = port
        self.idp = idp
        self.partner_port = partner_port  # an HTTPS server that wants our client certificate

    def token(self, sub: str = "alice", key: ec.EllipticCurvePrivateKey | None = None) -> str:
        now = int(time.time())
        claims = {"sub": sub, "iss": "https://idp.test", "iat": now, "exp": now + 300}
        return jwt.encode(claims, key or self.idp, "ES256", headers={"kid": "k1"})

    def curl(
        self, path: str, *args: str, token: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        """One request with curl (TLS verified against the operator's certificate)."""
        command = [
            "curl", "-sS", "--max-time", "30", "--cacert", str(self.folder / "edge.pem"),
            "-D", "-", f"https://localhost:{self.port}{path}", *args,
        ]  # fmt: skip
        if token is not None:
            command += ["-H", f"Authorization: Bearer {token}"]
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr.decode()
        head, _, body = done.stdout.decode().partition("\r\n\r\n")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, body


@pytest.fixture(scope="module")
def gateways() -> Iterator[Gateways]:
    """One mesh for the module's tests (they only read it); cleaned up as `sandbox` is."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (Debian package curl)")
    sandbox = Sandbox(Path(tempfile.mkdtemp(prefix="eblocks-it-")))
    try:
        yield from _mesh(sandbox)
    finally:
        leftovers = sandbox.close()
    if leftovers:
        pytest.fail("processes left behind after `eblocks down`:\n" + "\n".join(leftovers))


def _mesh(sandbox: Sandbox) -> Iterator[Gateways]:
    folder = sandbox.work / "gw"
    folder.mkdir()
    (folder / "handlers.py").write_text(HANDLERS)
    _operator_cert(folder)
    idp = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(idp.public_key()))
    jwk.update(kid="k1", alg="ES256", use="sig")
    (folder / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    (folder / "site").mkdir()
    (folder / "site" / "hello.txt").write_text("hello from outside\n")
    (folder / "site" / "big.txt").write_text("0123456789" * 300_000)  # 3 MB: many reads
    outside_port = _free_port()
    partner_port = _free_port()
    (folder / "tls").mkdir()
    _partner_pki(folder / "tls")
    (folder / "partner.py").write_text(MTLS_SERVER)
    port = _free_port()
    (folder / "mesh.yaml").write_text(
        f"""apiVersion: eblocks/v1
mesh: gw
security:
  tokens: {{mode: required}}  # carries the verified user across hops
  end_user: {{jwks_file: jwks.json, issuer: https://idp.test, required: true}}
blocks:
  echo: {{handler: handlers:echo}}
  fetch: {{handler: handlers:fetch}}
  wrap: {{handler: handlers:wrap}}
  edge:
    port: {port}
    gateway:
      kind: ingress
      tls: {{cert: edge.pem, key: edge.key}}
      routes:
        - {{name: echo, match: {{path: {{prefix: /echo}}}}, to: echo, strip_prefix: /echo}}
        - {{name: fetch, match: {{path: {{exact: /fetch}}, methods: [POST]}}, to: fetch}}
        - {{name: pipe, match: {{path: {{prefix: /pipe}}}}, to: twice}}
      cors: {{allow_origins: ["https://app.test"]}}
  outbound:
    gateway:
      kind: egress
      allow:
        - {{host: localhost, scheme: http, ports: [{outside_port}]}}
        - {{host: localhost, ports: [{partner_port}], ca_file: tls/ca.pem,
           client_cert: tls/client.pem, client_key: tls/client.key}}
        - {{host: 127.0.0.1, ports: [{partner_port}], ca_file: tls/ca.pem}}  # no client cert
patterns:
  twice: {{pipeline: [echo, wrap]}}
policies:
  blocks:
    edge:
      rate_limits:
        - {{match: {{path: {{prefix: /echo/flood}}}}, rate: 1, burst: 5, per: source}}
"""
    )
    outside = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(outside_port), "--bind", "127.0.0.1"],
        cwd=folder / "site",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tls = folder / "tls"
    partner = subprocess.Popen(
        [sys.executable, str(folder / "partner.py"), str(partner_port), str(tls / "ca.pem"),
         str(tls / "server.pem"), str(tls / "server.key"), str(folder / "site")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        up = sandbox.up(folder / "mesh.yaml")
        assert up.returncode == 0, str(up)
        yield Gateways(sandbox, folder, port, idp, partner_port)
    finally:
        for server in (outside, partner):
            server.terminate()
            server.wait(timeout=10)


def test_ingress_routes_a_valid_user_to_the_block(gateways: Gateways) -> None:
    status, headers, body = gateways.curl(
        "/echo/docs/7?lang=en",
        "-X", "POST", "--data-binary", "hi",
        "-H", "x-eblocks-stage: 9",  # a client never sets mesh headers
        token=gateways.token(),
    )  # fmt: skip
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    assert answer == {"path": "/docs/7?lang=en", "user": "alice", "body": "hi", "leaked": []}
    assert not any(h.startswith("x-eblocks-") for h in headers)


def test_ingress_routes_to_a_pattern(gateways: Gateways) -> None:
    status, _, body = gateways.curl(
        "/pipe/x", "-X", "POST", "--data-binary", "hi", token=gateways.token()
    )
    assert status == 200, body
    assert body.startswith("wrapped:")  # echo, then wrap: the pipeline ran in order
    assert json.loads(body.removeprefix("wrapped:"))["body"] == "hi"


def test_ingress_refuses_bad_tokens_and_unknown_paths(gateways: Gateways) -> None:
    missing = gateways.curl("/echo/x", "-X", "POST")
    assert missing[0] == 401
    assert missing[1]["x-eblocks-error"] == "unauthenticated"
    assert missing[1]["x-eblocks-origin"] == "edge"

    forged = gateways.curl(
        "/echo/x", "-X", "POST", token=gateways.token(key=ec.generate_private_key(ec.SECP256R1()))
    )
    assert forged[0] == 401

    unknown = gateways.curl("/nowhere", token=gateways.token())
    assert unknown[0] == 404
    assert unknown[1]["x-eblocks-error"] == "no_route"
    assert json.loads(unknown[2])["path"] == "/nowhere"

    wrong_method = gateways.curl("/fetch", token=gateways.token())  # GET; the route wants POST
    assert wrong_method[0] == 404


def test_ingress_matches_and_forwards_the_path_as_a_server_reads_it(gateways: Gateways) -> None:
    """`..` cannot step out of a route's prefix (the target would resolve it), and the
    prefix is stripped only at a segment's end."""
    for escape in ("/echo/../nowhere", "/echo/%2e%2e/nowhere"):
        status, headers, _ = gateways.curl(
            escape, "--path-as-is", "-X", "POST", token=gateways.token()
        )
        assert (status, headers.get("x-eblocks-error")) == (404, "no_route"), escape
    status, _, body = gateways.curl(
        "/echo/a/./b%2Fc", "--path-as-is", "-X", "POST", token=gateways.token()
    )
    assert status == 200, body
    assert json.loads(body)["path"] == "/a/b/c"
    status, _, body = gateways.curl("/echoes/x", "-X", "POST", token=gateways.token())
    assert status == 200, body
    assert json.loads(body)["path"] == "/echoes/x"  # /echo is no segment of /echoes


def test_cors_preflight_and_responses(gateways: Gateways) -> None:
    status, headers, _ = gateways.curl(
        "/echo/x",
        "-X", "OPTIONS",
        "-H", "Origin: https://app.test",
        "-H", "Access-Control-Request-Method: POST",
        "-H", "Access-Control-Request-Headers: authorization, content-type",
    )  # fmt: skip
    assert status == 204  # answered before authentication: a preflight has no credentials
    assert headers["access-control-allow-origin"] == "https://app.test"
    assert "POST" in headers["access-control-allow-methods"]

    refused = gateways.curl(
        "/echo/x",
        "-X", "OPTIONS",
        "-H", "Origin: https://evil.test",
        "-H", "Access-Control-Request-Method: POST",
    )  # fmt: skip
    assert "access-control-allow-origin" not in refused[1]
    for asking in (
        ("-H", "Access-Control-Request-Method: PATCH"),  # a method not allowed
        ("-H", "Access-Control-Request-Method: POST", "-H", "Access-Control-Request-Headers: x-f"),
    ):
        denied = gateways.curl(
            "/echo/x", "-X", "OPTIONS", "-H", "Origin: https://app.test", *asking
        )
        assert "access-control-allow-origin" not in denied[1], asking  # refused: none at all

    status, headers, _ = gateways.curl(
        "/echo/x", "-X", "POST", "-H", "Origin: https://app.test", token=gateways.token()
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.test"
    assert "x-eblocks-error" in headers["access-control-expose-headers"]


def test_egress_fetches_allowed_hosts_only(gateways: Gateways) -> None:
    port = gateways_outside_port(gateways)
    status, headers, body = gateways.curl(
        "/fetch",
        "-X", "POST", "--data-binary", f"http://localhost:{port}/hello.txt",
        token=gateways.token(),
    )  # fmt: skip
    assert status == 200, body
    assert body == "hello from outside\n"
    assert headers["x-fetched-status"] == "200"

    status, _, body = gateways.curl(
        "/fetch",
        "-X", "POST", "--data-binary", f"http://localhost:{port}/big.txt",
        token=gateways.token(),
    )  # fmt: skip
    assert status == 200
    assert body == "0123456789" * 300_000  # whole: it was cut at what had arrived

    refused = gateways.curl(
        "/fetch",
        "-X", "POST", "--data-binary", f"http://127.0.0.1:{port}/hello.txt",  # not on the list
        token=gateways.token(),
    )  # fmt: skip
    assert refused[0] == 403
    assert refused[1]["x-eblocks-error"] == "forbidden"
    assert refused[1]["x-eblocks-origin"] == "outbound"

    missing = gateways.curl(
        "/fetch",
        "-X", "POST", "--data-binary", f"http://localhost:{port}/absent.txt",
        token=gateways.token(),
    )  # fmt: skip
    assert missing[0] == 404
    assert missing[1]["x-eblocks-error"] == "upstream"

    metrics = wait_for(
        lambda: _egress_metrics(gateways, port), timeout=30, what="egress series in /metrics"
    )
    assert f'dst_block="localhost:{port}"' in metrics


def gateways_outside_port(gateways: Gateways) -> int:
    spec = (gateways.folder / "mesh.yaml").read_text()
    return int(spec.split("ports: [")[1].split("]")[0])


def _egress_metrics(gateways: Gateways, port: int) -> str | None:
    for row in gateways.sandbox.instances("gw"):
        if row.get("block") != "outbound":
            continue
        text = gateways.sandbox.admin_ok("gw", row, "/metrics", timeout=10).decode()
        if f'dst_block="localhost:{port}"' in text:
            return text
    return None


def test_a_flood_from_one_client_gets_429_while_others_pass(gateways: Gateways) -> None:
    alice = gateways.token("alice")
    statuses = []
    for _ in range(20):
        status, headers, _ = gateways.curl("/echo/flood", "-X", "POST", token=alice)
        statuses.append(status)
        if status == 429:
            assert headers["x-eblocks-error"] == "rate_limited"
            assert int(headers["retry-after"]) >= 1
    assert statuses.count(200) >= 5  # the burst, at least
    assert statuses.count(429) >= 5  # 20 requests within seconds at 1/s: most refused
    assert set(statuses) == {200, 429}
    # one bucket per client (the verified user): bob is not slowed down by alice
    assert gateways.curl("/echo/flood", "-X", "POST", token=gateways.token("bob"))[0] == 200


def test_egress_originates_mtls_where_configured(gateways: Gateways) -> None:
    port, token = gateways.partner_port, gateways.token()
    url = f"https://localhost:{port}/hello.txt"  # allowed with our client certificate

    def fetched() -> tuple[int, dict[str, str], str] | None:
        answer = gateways.curl("/fetch", "-X", "POST", "--data-binary", url, token=token)
        return answer if answer[1].get("x-eblocks-error") != "connect" else None  # not up yet

    status, _, body = wait_for(fetched, timeout=30, what="the partner's HTTPS server")
    assert status == 200, body
    assert body == "hello from outside\n"
    # the same server by another allowed name whose entry has no client certificate:
    # the partner refuses the handshake, the gateway answers `connect`
    bare = f"https://127.0.0.1:{port}/hello.txt"
    refused = gateways.curl("/fetch", "-X", "POST", "--data-binary", bare, token=token)
    assert refused[0] == 502
    assert refused[1]["x-eblocks-error"] == "connect"
    assert refused[1]["x-eblocks-origin"] == "outbound"
