"""The gossip key rotates with the mesh CA."""

from __future__ import annotations

from pathlib import Path

from eblocks.discovery.seeds import read_keys
from eblocks.discovery.wire import key_id_of
from eblocks.security import LocalIssuer
from eblocks.security.gossipkey import rotate_key_file
from eblocks.security.local import TRUST_SPREAD, identity_folder
from eblocks.security.svid import Svid, load_certs
from eblocks.spec import parse_spec

GOSSIP = """
apiVersion: eblocks/v1
mesh: g
blocks:
  a: {handler: "x:y"}
discovery: {mode: gossip}
"""


def test_rotation_puts_a_new_signing_key_first_and_keeps_the_previous(tmp_path: Path) -> None:
    path = tmp_path / "gossip.key"
    path.write_bytes(b"a" * 32 + b"\n" + b"z" * 32 + b"\n")
    new = rotate_key_file(path)
    assert read_keys(tmp_path) == [new, b"a" * 32]  # the key before the previous is gone
    assert key_id_of(new) != key_id_of(b"a" * 32)
    assert path.stat().st_mode & 0o777 == 0o600


def test_ca_rotation_rotates_a_generated_gossip_key(tmp_path: Path) -> None:
    spec = parse_spec(GOSSIP, "g.yaml")
    now = [0.0]
    issuer = LocalIssuer(spec, tmp_path, clock=lambda: now[0])
    issuer.issue_block("a-0", "a")
    (tmp_path / "gossip.key").write_bytes(b"k" * 32 + b"\n")
    issuer.ca().rotate()
    assert issuer.renew_due() == ["a-0"]  # the new root trusted first
    assert read_keys(tmp_path) == [b"k" * 32]
    now[0] += TRUST_SPREAD
    assert issuer.renew_due() == ["a-0"]  # then issued from
    keys = read_keys(tmp_path)
    assert len(keys) == 2
    assert keys[1] == b"k" * 32


def test_a_pinned_gossip_key_is_left_alone(tmp_path: Path) -> None:
    pinned = GOSSIP.replace("{mode: gossip}", "{mode: gossip, key: " + "p" * 20 + "}")
    now = [0.0]
    issuer = LocalIssuer(parse_spec(pinned, "g.yaml"), tmp_path, clock=lambda: now[0])
    issuer.issue_block("a-0", "a")
    (tmp_path / "gossip.key").write_bytes(b"p" * 20 + b"\n")
    issuer.ca().rotate()
    issuer.renew_due()
    now[0] += TRUST_SPREAD
    issuer.renew_due()
    assert (tmp_path / "gossip.key").read_bytes() == b"p" * 20 + b"\n"


def test_a_rotated_ca_is_trusted_by_every_holder_before_anything_is_issued_from_it(
    tmp_path: Path,
) -> None:
    """`eblocks ca rotate` under load: a peer that met a certificate from the new root
    before its bundle had it refused the handshake (calls failed); now the bundle goes
    first, and the SVIDs from the new root only after `TRUST_SPREAD`."""
    now = [0.0]
    issuer = LocalIssuer(parse_spec(GOSSIP, "g.yaml"), tmp_path, clock=lambda: now[0])
    issuer.issue_block("a-0", "a")
    issuer.issue_client()
    folders = [identity_folder(tmp_path, h) for h in ("a-0", "cli")]
    before = {f: (f / "svid.pem").read_bytes() for f in folders}
    issuer.ca().rotate()
    assert issuer.renew_due() == ["a-0", "cli"]
    for folder in folders:
        assert len(load_certs((folder / "bundle.pem").read_bytes())) == 2  # old and new root
        assert (folder / "svid.pem").read_bytes() == before[folder]  # still from the old one
        Svid.read(folder)  # and it verifies against the new bundle
    now[0] += TRUST_SPREAD / 2
    assert issuer.renew_due() == []
    now[0] += TRUST_SPREAD / 2
    assert issuer.renew_due() == ["a-0", "cli"]
    for folder in folders:
        assert (folder / "svid.pem").read_bytes() != before[folder]
        Svid.read(folder)
