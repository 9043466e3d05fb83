"""The mesh CA and its SVIDs, checked by the real `openssl` binary and the `spiffe` library."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import spiffe
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from eblocks.errors import IdentityError, SecurityError
from eblocks.security import Identity, MeshCA, Svid
from eblocks.security.ca import KeyType

from .secmesh import damage_signature

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl (scripts/system-deps.sh)")
DAY = dt.timedelta(days=1)
ME = Identity("example.org", "shop", "cart")


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


def write_svid(svid: Svid, folder: Path, ca: MeshCA) -> Path:
    svid.write(folder, ca.bundle)
    return folder


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519"])
def test_init_writes_a_private_key_and_openssl_verifies_the_svid(
    tmp_path: Path, key_type: KeyType
) -> None:
    ca = MeshCA.init(tmp_path / "ca", "example.org", key_type=key_type)
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    folder = write_svid(ca.issue(ME, DAY), tmp_path / "id", ca)
    assert stat.S_IMODE((folder / "svid.key").stat().st_mode) == 0o600
    done = openssl("verify", "-CAfile", folder / "bundle.pem", folder / "svid.pem")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(": OK")
    text = openssl("x509", "-in", folder / "svid.pem", "-noout", "-ext", "subjectAltName").stdout
    assert "URI:spiffe://example.org/mesh/shop/block/cart" in text
    loaded = Svid.read(folder)
    assert loaded.identity == ME
    assert isinstance(loaded.key, ed25519.Ed25519PrivateKey) == (key_type == "ed25519")


def test_the_spiffe_library_parses_the_svid_id(tmp_path: Path) -> None:
    ca = MeshCA.init(tmp_path / "ca", "example.org")
    folder = write_svid(ca.issue(ME, DAY), tmp_path / "id", ca)
    parsed = spiffe.X509Svid.parse(
        (folder / "svid.pem").read_bytes(), (folder / "svid.key").read_bytes()
    )
    assert str(parsed.spiffe_id) == "spiffe://example.org/mesh/shop/block/cart"
    assert str(parsed.spiffe_id.trust_domain) == "example.org"


def test_svid_ttl_and_half_life(tmp_path: Path) -> None:
    ca = MeshCA.init(tmp_path / "ca", "example.org")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    svid = ca.issue(ME, dt.timedelta(hours=24), now=now)
    assert svid.not_after == now + dt.timedelta(hours=24)
    assert svid.renew_at() == now + dt.timedelta(hours=12)  # half-life from issue, not notBefore


def test_passphrase_protects_the_key(tmp_path: Path) -> None:
    MeshCA.init(tmp_path / "ca", "example.org", passphrase=b"correct horse")
    assert b"ENCRYPTED" in (tmp_path / "ca" / "ca.key").read_bytes()
    with pytest.raises(SecurityError, match="EBLOCKS_CA_PASSPHRASE"):
        MeshCA.load(tmp_path / "ca")
    with pytest.raises(SecurityError, match="cannot load"):
        MeshCA.load(tmp_path / "ca", b"wrong")
    ca = MeshCA.load(tmp_path / "ca", b"correct horse")
    assert ca.describe()["key_encrypted"] is True


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    MeshCA.init(tmp_path / "ca", "example.org")
    with pytest.raises(SecurityError, match="already exists"):
        MeshCA.init(tmp_path / "ca", "example.org")


def test_root_is_name_constrained_to_its_trust_domain(tmp_path: Path) -> None:
    ca = MeshCA.init(tmp_path / "ca", "example.org")
    with pytest.raises(SecurityError, match="outside this CA's trust domain"):
        ca.issue(Identity("evil.org", "shop", "cart"), DAY)
    # sign one anyway, bypassing the check: openssl refuses it by the name constraint
    svid = ca.issue(ME, DAY)
    forged = ca.sign(svid.key.public_key(), Identity("evil.org", "shop", "cart"), DAY)
    svid = Svid(forged, svid.key)
    folder = write_svid(svid, tmp_path / "id", ca)
    done = openssl("verify", "-CAfile", folder / "bundle.pem", folder / "svid.pem")
    assert done.returncode != 0
    assert "permitted subtree violation" in done.stdout + done.stderr


def test_rotation_keeps_the_old_root_trusted(tmp_path: Path) -> None:
    ca = MeshCA.init(tmp_path / "ca", "example.org")
    old = write_svid(ca.issue(ME, DAY), tmp_path / "old", ca)
    rotated = ca.rotate()
    assert len(rotated.anchors) == 2
    new = write_svid(rotated.issue(ME, DAY), tmp_path / "new", rotated)
    bundle = tmp_path / "ca" / "bundle.pem"
    for folder in (old, new):
        done = openssl("verify", "-CAfile", bundle, folder / "svid.pem")
        assert done.returncode == 0, done.stderr
    assert rotated.cert != ca.cert
    reloaded = MeshCA.load(tmp_path / "ca")
    assert reloaded.cert == rotated.cert
    assert len(reloaded.describe()["anchors"]) == 2


def test_bring_your_own_intermediate(tmp_path: Path) -> None:
    """A root and an intermediate made by openssl; the mesh CA signs with the intermediate."""
    cnf = tmp_path / "ext.cnf"
    cnf.write_text(
        "[req]\ndistinguished_name=dn\n[dn]\n"
        "[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    )
    root_key, root = tmp_path / "root.key", tmp_path / "root.pem"
    int_key, int_csr, inter = tmp_path / "int.key", tmp_path / "int.csr", tmp_path / "int.pem"
    for key in (root_key, int_key):
        assert openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                       "-out", key).returncode == 0  # fmt: skip
    made = openssl("req", "-x509", "-new", "-key", root_key, "-subj", "/CN=corp root",
                   "-days", "30", "-out", root, "-extensions", "v3_ca", "-config", cnf)  # fmt: skip
    assert made.returncode == 0, made.stderr
    made = openssl("req", "-new", "-key", int_key, "-subj", "/CN=mesh int", "-out", int_csr,
                   "-config", cnf)  # fmt: skip
    assert made.returncode == 0, made.stderr
    made = openssl("x509", "-req", "-in", int_csr, "-CA", root, "-CAkey", root_key,
                   "-CAcreateserial", "-days", "30", "-out", inter,
                   "-extfile", cnf, "-extensions", "v3_ca")  # fmt: skip
    assert made.returncode == 0, made.stderr
    with pytest.raises(SecurityError, match="--bundle"):
        MeshCA.init(tmp_path / "x", "example.org", cert_pem=inter.read_bytes(),
                    key_pem=int_key.read_bytes())  # fmt: skip
    ca = MeshCA.init(
        tmp_path / "ca",
        "example.org",
        cert_pem=inter.read_bytes(),
        key_pem=int_key.read_bytes(),
        bundle_pem=root.read_bytes(),
    )
    folder = write_svid(ca.issue(ME, DAY), tmp_path / "id", ca)
    assert len(x509.load_pem_x509_certificates((folder / "svid.pem").read_bytes())) == 2
    (tmp_path / "leaf.pem").write_bytes(
        Svid.read(folder).cert.public_bytes(serialization.Encoding.PEM)
    )
    done = openssl("verify", "-CAfile", root, "-untrusted", folder / "svid.pem",
                   tmp_path / "leaf.pem")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(SecurityError, match="intermediate"):
        ca.rotate()


def test_bring_your_own_rejects_a_leaf_or_a_foreign_key(tmp_path: Path) -> None:
    ca = MeshCA.init(tmp_path / "ca", "example.org")
    svid = ca.issue(ME, DAY)
    leaf = svid.cert.public_bytes(serialization.Encoding.PEM)
    key = svid.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SecurityError, match="not a CA certificate"):
        MeshCA.init(tmp_path / "a", "example.org", cert_pem=leaf, key_pem=key)
    root = ca.cert.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(SecurityError, match="does not belong"):
        MeshCA.init(tmp_path / "b", "example.org", cert_pem=root, key_pem=key)


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://example.org/cart",
        "https://example.org/mesh/shop/block/cart",
        "spiffe://example.org/mesh/shop/block/Cart",
        "spiffe://example.org/mesh/shop/pod/cart",
    ],
)
def test_identity_parse_rejects_what_is_no_mesh_identity(uri: str) -> None:
    with pytest.raises(IdentityError, match="not a mesh identity"):
        Identity.parse(uri)


def test_identity_round_trips() -> None:
    client = Identity("example.org", "shop", "cli", "client")
    assert Identity.parse(str(client)) == client
    assert client.block is None
    assert ME.block == "cart"


def test_reading_an_svid_checks_its_key_and_its_chain(tmp_path: Path) -> None:
    """A damaged or mixed-up SVID is refused when read, naming what is wrong, not found
    out by every peer's handshake."""
    ca = MeshCA.init(tmp_path / "ca", "example.org")
    folder = write_svid(ca.issue(ME, DAY), tmp_path / "id", ca)
    other = write_svid(ca.issue(ME, DAY), tmp_path / "other", ca)
    assert Svid.read(folder).identity == ME

    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    shutil.copy(other / "svid.key", mixed / "svid.key")  # another holder's key
    with pytest.raises(IdentityError, match=r"svid\.key is not the key of svid\.pem"):
        Svid.read(mixed)

    foreign = MeshCA.init(tmp_path / "ca2", "example.org")
    stray = tmp_path / "stray"
    shutil.copytree(folder, stray)
    (stray / "bundle.pem").write_bytes(foreign.bundle)  # issued by another CA
    with pytest.raises(IdentityError, match="does not verify against the trust bundle"):
        Svid.read(stray)

    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    damage_signature(damaged / "svid.pem")
    with pytest.raises(IdentityError, match="does not verify against the trust bundle"):
        Svid.read(damaged)
