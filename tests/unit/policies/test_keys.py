"""The policy signing key in the state dir: created once, private, loaded back."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from eblocks.errors import SecurityError
from eblocks.policies.keys import (
    ensure_signing_key,
    key_id,
    load_public_key,
    load_signing_key,
    new_run,
    policy_folder,
    read_run,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_pair_is_created_once_and_kept_private(tmp_path: Path) -> None:
    assert ensure_signing_key(tmp_path) is True
    folder = policy_folder(tmp_path)
    assert mode(folder) == 0o700
    assert mode(folder / "signing.key") == 0o600
    first = key_id(load_signing_key(tmp_path).public_key())
    assert ensure_signing_key(tmp_path) is False
    assert key_id(load_signing_key(tmp_path).public_key()) == first
    public = load_public_key(tmp_path)
    assert public is not None
    assert key_id(public) == first
    assert len(first) == 16


def test_missing_keys(tmp_path: Path) -> None:
    assert load_public_key(tmp_path) is None
    with pytest.raises(SecurityError, match="policy signing key"):
        load_signing_key(tmp_path)


def test_a_corrupt_public_key_is_an_error(tmp_path: Path) -> None:
    ensure_signing_key(tmp_path)
    (policy_folder(tmp_path) / "signing.pub").write_text("garbage")
    with pytest.raises(SecurityError, match="policy public key"):
        load_public_key(tmp_path)


def test_each_run_gets_a_new_id(tmp_path: Path) -> None:
    assert read_run(tmp_path) == ""
    first = new_run(tmp_path)
    assert read_run(tmp_path) == first
    second = new_run(tmp_path)
    assert second != first
    assert read_run(tmp_path) == second
