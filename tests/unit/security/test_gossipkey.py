"""The gossip key rotates with the mesh CA; members follow the file."""

from __future__ import annotations

import time
from pathlib import Path

from eblocks.discovery.wire import Keyring
from eblocks.security import LocalIssuer
from eblocks.security.gossipkey import key_id, keyring_for, refresh, rotate_key_file
from eblocks.spec import parse_spec

GOSSIP = """
apiVersion: eblocks/v1
mesh: g
blocks:
  a: {handler: "x:y"}
discovery: {mode: gossip}
"""


def test_refresh_makes_the_new_key_primary_and_keeps_the_old_for_a_while(tmp_path: Path) -> None:
    path = tmp_path / "gossip.key"
    path.write_bytes(b"a" * 32)
    ring = keyring_for(b"a" * 32)
    old_id = ring.primary_id
    assert not refresh(path, ring)  # unchanged
    new = rotate_key_file(path)
    assert key_id(new) != old_id
    assert refresh(path, ring, window=5)
    assert ring.sign_key() == (key_id(new), new)
    now = time.monotonic()
    assert ring.key(old_id, now) == b"a" * 32
    assert ring.key(old_id, now + 10) is None  # the window closed


def test_ca_rotation_rotates_a_generated_gossip_key(tmp_path: Path) -> None:
    spec = parse_spec(GOSSIP, "g.yaml")
    issuer = LocalIssuer(spec, tmp_path)
    issuer.issue_block("a-0", "a")
    (tmp_path / "gossip.key").write_bytes(b"k" * 32)
    issuer.ca().rotate()
    assert issuer.renew_due() == ["a-0"]
    key = (tmp_path / "gossip.key").read_bytes()
    assert key != b"k" * 32
    assert isinstance(Keyring(key, key_id(key)), Keyring)


def test_a_pinned_gossip_key_is_left_alone(tmp_path: Path) -> None:
    spec = parse_spec(
        GOSSIP.replace("{mode: gossip}", "{mode: gossip, key: " + "p" * 20 + "}"), "g"
    )
    issuer = LocalIssuer(spec, tmp_path)
    issuer.issue_block("a-0", "a")
    (tmp_path / "gossip.key").write_bytes(b"p" * 20)
    issuer.ca().rotate()
    issuer.renew_due()
    assert (tmp_path / "gossip.key").read_bytes() == b"p" * 20
