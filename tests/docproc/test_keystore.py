"""The key store: one key per slot even when processes race, file modes, lookups, the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from typer.testing import CliRunner

from docproc.errors import KeyStoreError, UnknownKeyError
from docproc.keystore import LEVELS, RSA_BITS, SIGNING, KeyStore, key_id
from eblocks.cli.app import app

RACERS = 3
# Each racer waits for the start file, then creates every key: they all ask at once.
RACE = """
import json, sys, time
from pathlib import Path
from docproc.keystore import KeyStore
root, go = Path(sys.argv[1]), Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("start file never appeared")
    time.sleep(0.005)
print(json.dumps(KeyStore(root).ensure()))
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_processes_creating_the_store_at_once_end_with_one_key_per_slot(tmp_path: Path) -> None:
    root, go = tmp_path / "keys", tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(root), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS)
    ]
    time.sleep(0.2)  # let the interpreters start; the race begins at the file either way
    go.touch()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=240)
        assert racer.returncode == 0, err
        results.append(json.loads(out))
    assert all(result == results[0] for result in results)
    kids = results[0]
    assert sorted(kids) == sorted([*LEVELS, SIGNING])
    pems = sorted(p.name for p in root.glob("*.pem"))
    assert pems == sorted(f"{kid}.pem" for kid in kids.values())
    assert not list(root.glob("*.tmp")), "temporary files left behind"


def test_key_ids_name_the_keys_and_sizes_follow_the_level(keystore: KeyStore) -> None:
    for level in LEVELS:
        kid, public = keystore.encryption_key(level)
        assert public.key_size == RSA_BITS[level]
        assert kid == key_id(public)
        assert kid.startswith(f"rsa{RSA_BITS[level]}-")
        assert len(kid.split("-")[1]) == 16
    signer, private = keystore.signing_key()
    assert signer.startswith("ed25519-")
    assert signer == key_id(private.public_key())


def test_files_are_private(keystore: KeyStore) -> None:
    assert _mode(keystore.root) == 0o700
    pems = list(keystore.root.glob("*.pem"))
    assert len(pems) == 4
    for pem in pems:
        assert _mode(pem) == 0o600


def test_a_second_store_on_the_directory_finds_the_same_keys(keystore: KeyStore) -> None:
    again = KeyStore(keystore.root)
    assert again.ensure() == keystore.ensure()
    for level in LEVELS:
        kid, public = keystore.encryption_key(level)
        loaded = again.decryption_key(kid)
        assert loaded.public_key().public_numbers() == public.public_numbers()
    signer, signing = keystore.signing_key()
    message = b"signed by the first, checked by the second"
    again.verification_key(signer).verify(signing.sign(message), message)


def test_shared_returns_one_store_per_directory(keystore: KeyStore) -> None:
    assert KeyStore.shared(keystore.root) is KeyStore.shared(keystore.root / ".." / "keys")


def test_unknown_and_malformed_key_ids_are_refused(keystore: KeyStore) -> None:
    with pytest.raises(UnknownKeyError, match="no key 'rsa2048-0000000000000000'"):
        keystore.decryption_key("rsa2048-0000000000000000")
    with pytest.raises(UnknownKeyError, match="not a key id"):
        keystore.decryption_key("../../etc/passwd")
    signer, _ = keystore.signing_key()
    with pytest.raises(UnknownKeyError, match="not an RSA key"):
        keystore.decryption_key(signer)
    kid, _ = keystore.encryption_key("low")
    with pytest.raises(UnknownKeyError, match="not an Ed25519"):
        keystore.verification_key(kid)
    with pytest.raises(UnknownKeyError, match="unknown risk level 'urgent'"):
        keystore.encryption_key("urgent")


def test_a_key_file_that_does_not_match_its_name_is_refused(
    keystore: KeyStore, tmp_path: Path
) -> None:
    other = tmp_path / "keys"
    other.mkdir(mode=0o700)
    real = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    impostor = ed25519.Ed25519PrivateKey.generate()
    kid = key_id(real.public_key())
    pem = impostor.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (other / f"{kid}.pem").write_bytes(pem)
    os.chmod(other / f"{kid}.pem", 0o600)
    with pytest.raises(KeyStoreError, match=f"holds key ed25519-.*, not {kid}"):
        KeyStore(other).decryption_key(kid)


def test_group_readable_directory_or_key_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o755)
    with pytest.raises(KeyStoreError, match=r"open to group or others .*chmod 700"):
        KeyStore(loose).signing_key()
    os.chmod(loose, 0o700)
    store = KeyStore(loose)
    signer, _ = store.signing_key()
    os.chmod(loose / f"{signer}.pem", 0o644)
    with pytest.raises(KeyStoreError, match=r"private key file .* chmod 600"):
        KeyStore(loose).verification_key(signer)


def test_a_pointer_to_the_wrong_kind_of_key_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "keys"
    store = KeyStore(root)
    signer, _ = store.signing_key()
    (root / "low.kid").write_text(signer + "\n")
    with pytest.raises(KeyStoreError, match=r"low.kid does not hold a rsa2048-\.\.\. key id"):
        KeyStore(root).encryption_key("low")


def test_cli_keys_init_then_list(tmp_path: Path) -> None:
    root = tmp_path / "cli-keys"
    runner = CliRunner()
    missing = runner.invoke(app, ["docproc", "keys", "list", "--dir", str(root)])
    assert missing.exit_code == 1
    assert "no key store" in missing.output
    created = runner.invoke(app, ["docproc", "keys", "init", "--dir", str(root)])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["docproc", "keys", "list", "--dir", str(root), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [row["slot"] for row in rows] == [*LEVELS, SIGNING]
    assert {row["kid"] for row in rows} == set(KeyStore(root).ensure().values())
    assert [row["algorithm"] for row in rows] == ["RSA-2048", "RSA-3072", "RSA-4096", "Ed25519"]


def test_ensure_reports_a_missing_key_file(tmp_path: Path) -> None:
    root = tmp_path / "keys"
    store = KeyStore(root)
    signer, _ = store.signing_key()
    (root / f"{signer}.pem").unlink()
    with pytest.raises(UnknownKeyError, match=f"no key '{signer}'"):
        KeyStore(root).verification_key(signer)
    (root / "low.kid").write_text(signer.replace("ed25519", "rsa2048") + "\n")
    with pytest.raises(UnknownKeyError, match="no key 'rsa2048-"):
        KeyStore(root).ensure()
