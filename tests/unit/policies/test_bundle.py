"""Policy bundles: signed, and refused for every reason before anything is swapped."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from eblocks.errors import EblocksError, PolicyBundleError
from eblocks.policies import PolicyState, digest_of
from eblocks.policies.bundle import (
    Bundle,
    bootstrap,
    check_policies,
    parse_bundle,
    sign_bundle,
    verify_bundle,
)
from eblocks.policies.keys import key_id, load_public_key, load_signing_key
from eblocks.security.jws import b64url
from eblocks.spec import MeshSpec
from eblocks.spec.policies import Policies

NOW = dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.UTC)


def newer(spec: MeshSpec, weight: int = 20) -> Policies:
    data = spec.policies.model_dump(mode="json")
    data["routes"][0]["destinations"][1]["weight"] = weight
    return Policies.model_validate(data)


def signed(spec: MeshSpec, state: Path, version: int = 1, **kw: Any) -> Bundle:
    policies = kw.pop("policies", None) or newer(spec)
    return sign_bundle(
        kw.pop("mesh", spec.mesh), version, policies, load_signing_key(state), now=NOW
    )


def refusal(bundle: Bundle, spec: MeshSpec, state: Path, current: int = 0) -> PolicyBundleError:
    with pytest.raises(PolicyBundleError) as info:
        verify_bundle(bundle, spec=spec, public=load_public_key(state), current=current)
    return info.value


def resign(bundle: Bundle, state: Path, **changes: Any) -> Bundle:
    """``bundle`` with ``changes``, properly signed again (to reach the checks after the key)."""
    unsigned = dataclasses.replace(bundle, **changes, signature="")
    signature = b64url(load_signing_key(state).sign(unsigned.signed_bytes()))
    return dataclasses.replace(unsigned, signature=signature)


def test_a_signed_bundle_verifies_into_the_state_it_carries(spec: MeshSpec, state: Path) -> None:
    bundle = signed(spec, state, version=3)
    assert bundle.issued_at == "2026-12-03T18:00:00Z"
    assert bundle.key_id == key_id(load_signing_key(state).public_key())
    got = verify_bundle(bundle, spec=spec, public=load_public_key(state), current=2)
    assert isinstance(got, PolicyState)
    assert got.version == 3
    assert got.digest == bundle.digest == digest_of(newer(spec))
    assert got.policies == newer(spec)


def test_the_wire_form_round_trips(spec: MeshSpec, state: Path) -> None:
    bundle = signed(spec, state)
    again = parse_bundle(bundle.dumps())
    assert again == bundle
    verify_bundle(again, spec=spec, public=load_public_key(state), current=0)


def test_a_bundle_of_another_run_is_refused(spec: MeshSpec, state: Path) -> None:
    """After a restart versions start at 0 again: a bundle of the last run must not replay."""
    old = sign_bundle(spec.mesh, 5, newer(spec), load_signing_key(state), run="aaaa")
    public = load_public_key(state)
    with pytest.raises(PolicyBundleError) as info:
        verify_bundle(old, spec=spec, public=public, current=0, run="bbbb")
    assert info.value.reason == "other_run"
    assert "'aaaa'" in str(info.value)
    assert verify_bundle(old, spec=spec, public=public, current=0, run="aaaa").version == 5
    assert refusal(dataclasses.replace(old, run="bbbb"), spec, state).reason == "bad_signature"


def test_tampered_policies_are_refused(spec: MeshSpec, state: Path) -> None:
    bundle = signed(spec, state)
    policies = newer(spec, weight=99).model_dump(mode="json")
    tampered = dataclasses.replace(bundle, policies=policies, digest=digest_of(newer(spec, 99)))
    error = refusal(tampered, spec, state)
    assert error.reason == "bad_signature"
    assert isinstance(error, EblocksError)
    assert isinstance(error, ValueError)


def test_a_raised_version_is_refused(spec: MeshSpec, state: Path) -> None:
    assert refusal(dataclasses.replace(signed(spec, state), version=9), spec, state).reason == (
        "bad_signature"
    )


def test_another_key_is_refused(spec: MeshSpec, state: Path) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    bundle = sign_bundle(spec.mesh, 1, newer(spec), other)
    assert refusal(bundle, spec, state).reason == "unknown_key"
    claimed = dataclasses.replace(bundle, key_id=key_id(load_signing_key(state).public_key()))
    assert refusal(claimed, spec, state).reason == "bad_signature"


def test_without_a_public_key_nothing_is_accepted(spec: MeshSpec, state: Path) -> None:
    with pytest.raises(PolicyBundleError) as info:
        verify_bundle(signed(spec, state), spec=spec, public=None, current=0)
    assert info.value.reason == "no_key"


def test_another_mesh_is_refused(spec: MeshSpec, state: Path) -> None:
    error = refusal(signed(spec, state, mesh="other"), spec, state)
    assert error.reason == "wrong_mesh"
    assert "'other'" in str(error)
    assert "'shop'" in str(error)


@pytest.mark.parametrize("version", [1, 2])
def test_equal_and_older_versions_are_refused(spec: MeshSpec, state: Path, version: int) -> None:
    error = refusal(signed(spec, state, version=version), spec, state, current=2)
    assert error.reason == "stale"


def test_policies_naming_an_unknown_block_are_refused(spec: MeshSpec, state: Path) -> None:
    data = newer(spec).model_dump(mode="json")
    data["routes"][0]["to"] = "ghost"
    bundle = resign(signed(spec, state), state, policies=data, digest=digest_of(Policies(**data)))
    error = refusal(bundle, spec, state)
    assert error.reason == "invalid"
    assert "policies.routes[0].to: unknown block 'ghost'" in str(error)


def test_policies_that_fail_validation_are_refused(spec: MeshSpec, state: Path) -> None:
    data = newer(spec).model_dump(mode="json")
    data["blocks"]["store"]["bulkhead"]["max_concurrent"] = 0
    error = refusal(resign(signed(spec, state), state, policies=data), spec, state)
    assert error.reason == "invalid"
    assert "policies.blocks.store.bulkhead.max_concurrent" in str(error)


def test_a_digest_that_does_not_match_is_refused(spec: MeshSpec, state: Path) -> None:
    bundle = resign(signed(spec, state), state, digest="0" * 64)
    assert refusal(bundle, spec, state).reason == "bad_digest"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"mesh": "shop"}', "missing field(s): run, version"),
        (b'{"mesh": "s", "run": "", "version": true, "digest": "", "policies": {}, "issued_at": "",'
         b' "key_id": "", "signature": ""}', "'version' must be an integer"),
        (b'{"mesh": "s", "run": "", "version": 1, "digest": "", "policies": [], "issued_at": "",'
         b' "key_id": "", "signature": ""}', "'policies' must be a JSON object"),
        (b'{"mesh": "s", "run": "", "version": 1, "digest": "", "policies": {}, "issued_at": "",'
         b' "key_id": "", "signature": "", "x": 1}', "unknown field(s): x"),
    ],
)  # fmt: skip
def test_malformed_bundles_are_named(body: bytes, words: str) -> None:
    with pytest.raises(PolicyBundleError) as info:
        parse_bundle(body)
    assert info.value.reason == "malformed"
    assert words in str(info.value)


def test_version_zero_is_the_specs_own_unsigned(spec: MeshSpec, state: Path) -> None:
    zero = bootstrap(spec.mesh, "", PolicyState.of(spec.policies))
    assert (zero.version, zero.signature, zero.key_id) == (0, "", "")
    assert zero.digest == digest_of(spec.policies)
    assert refusal(zero, spec, state).reason == "unknown_key"


def test_check_policies_reports_cross_references(spec: MeshSpec) -> None:
    assert check_policies(spec.policies.model_dump(mode="json"), spec) == []
    data = {"blocks": {"nope": {}}, "routes": [{"name": "r", "to": "store", "mirror": {"to": "x"}}]}
    assert check_policies(data, spec) == [
        "policies.routes[0].mirror.to: unknown block 'x' (expected one of: front, store)",
        "policies.blocks.nope: unknown block 'nope' (expected one of: front, store)",
    ]
