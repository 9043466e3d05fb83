"""The gossip key rotates with the mesh CA."""

from __future__ import annotations

from pathlib import Path

from eblocks.discovery.seeds import read_keys
from eblocks.discovery.wire import key_id_of
from eblocks.security import LocalIssuer
from eblocks.security.gossipkey import rotate_key_file
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
    issuer = LocalIssuer(spec, tmp_path)
    issuer.issue_block("a-0", "a")
    (tmp_path / "gossip.key").write_bytes(b"k" * 32 + b"\n")
    issuer.ca().rotate()
    assert issuer.renew_due() == ["a-0"]
    keys = read_keys(tmp_path)
    assert len(keys) == 2
    assert keys[1] == b"k" * 32


def test_a_pinned_gossip_key_is_left_alone(tmp_path: Path) -> None:
    pinned = GOSSIP.replace("{mode: gossip}", "{mode: gossip, key: " + "p" * 20 + "}")
    issuer = LocalIssuer(parse_spec(pinned, "g.yaml"), tmp_path)
    issuer.issue_block("a-0", "a")
    (tmp_path / "gossip.key").write_bytes(b"p" * 20 + b"\n")
    issuer.ca().rotate()
    issuer.renew_due()
    assert (tmp_path / "gossip.key").read_bytes() == b"p" * 20 + b"\n"
