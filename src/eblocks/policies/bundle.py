"""Signed policy bundles: how a new version of the policies travels through the mesh.

A bundle is one JSON object::

    {"mesh": "shop", "run": "<id of this run of the mesh>", "version": 3,
     "digest": "<sha256 of the canonical policies>", "policies": {...canonical JSON...},
     "issued_at": "2026-12-03T18:00:00Z",
     "key_id": "<16 hex>", "signature": "<base64url Ed25519>"}

The signature covers every other field, serialized as JSON with sorted keys
(`Bundle.signed_bytes`), so the bytes on the wire may be re-serialized by any
peer without breaking it. Version 0 is the spec's own policies, unsigned: it is
what an instance reports before any ``eblocks apply``, and never accepted.

`verify_bundle` is what an instance runs before `LivePolicies.swap`, in this
order, and the first failure is the refusal's ``reason``::

    malformed -> no_key / unknown_key -> bad_signature -> wrong_mesh -> other_run -> stale
      -> invalid (fields) -> bad_digest -> invalid (cross-references)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from eblocks.errors import PolicyBundleError
from eblocks.policies import PolicyState, digest_of
from eblocks.policies.keys import key_id
from eblocks.security.jws import JwsError, b64url, b64url_decode
from eblocks.spec.check import check_references
from eblocks.spec.loader import Loc, format_path
from eblocks.spec.models import MeshSpec
from eblocks.spec.policies import Policies

__all__ = [
    "Bundle",
    "bootstrap",
    "check_policies",
    "parse_bundle",
    "reference_problems",
    "sign_bundle",
    "verify_bundle",
]

_FIELDS = ("mesh", "run", "version", "digest", "policies", "issued_at", "key_id", "signature")


@dataclass(frozen=True, slots=True)
class Bundle:
    """One version of the policies of one mesh, as signed by `eblocks apply`."""

    mesh: str
    run: str
    version: int
    digest: str
    policies: Mapping[str, Any]
    issued_at: str = ""
    key_id: str = ""
    signature: str = ""

    def signed_bytes(self) -> bytes:
        """What the signature covers: every field but the signature, keys sorted."""
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)


def bootstrap(mesh: str, run: str, state: PolicyState) -> Bundle:
    """The unsigned bundle of a state no bundle delivered (version 0: the spec's policies)."""
    return Bundle(mesh, run, state.version, state.digest, state.policies.model_dump(mode="json"))


def sign_bundle(
    mesh: str,
    version: int,
    policies: Policies,
    key: ed25519.Ed25519PrivateKey,
    *,
    run: str = "",
    now: dt.datetime | None = None,
) -> Bundle:
    """Sign ``policies`` as ``version`` of ``mesh``'s policies, for its run ``run``."""
    issued = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = Bundle(
        mesh,
        run,
        version,
        digest_of(policies),
        policies.model_dump(mode="json"),
        issued,
        key_id(key.public_key()),
    )
    signature = b64url(key.sign(unsigned.signed_bytes()))
    return Bundle(**{**asdict(unsigned), "signature": signature})


def parse_bundle(data: bytes | Mapping[str, Any]) -> Bundle:
    """A `Bundle` from JSON (bytes or already parsed); PolicyBundleError ``malformed``."""
    try:
        raw = orjson.loads(data) if isinstance(data, bytes) else data
    except orjson.JSONDecodeError as exc:
        raise PolicyBundleError("malformed", f"not JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise PolicyBundleError("malformed", "a bundle is a JSON object")
    missing = [f for f in _FIELDS if f not in raw]
    if missing:
        raise PolicyBundleError("malformed", f"missing field(s): {', '.join(missing)}")
    extra = sorted(set(raw) - set(_FIELDS))
    if extra:
        raise PolicyBundleError("malformed", f"unknown field(s): {', '.join(extra)}")
    version = raw["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise PolicyBundleError("malformed", f"'version' must be an integer >= 0, got {version!r}")
    if not isinstance(raw["policies"], Mapping):
        raise PolicyBundleError("malformed", "'policies' must be a JSON object")
    for name in ("mesh", "run", "digest", "issued_at", "key_id", "signature"):
        if not isinstance(raw[name], str):
            raise PolicyBundleError("malformed", f"{name!r} must be a string")
    return Bundle(**{f: raw[f] for f in _FIELDS})


def reference_problems(policies: Mapping[str, Any], spec: MeshSpec) -> list[tuple[Loc, str]]:
    """Cross-reference problems of raw ``policies`` against the blocks and patterns of
    ``spec``, each with its location in a spec file (``("policies", "routes", 3, ...)``)."""
    data = {
        "blocks": {name: {} for name in spec.blocks},
        "patterns": {name: {} for name in spec.patterns},
        "policies": policies,
    }
    return list(check_references(data))


def check_policies(policies: Mapping[str, Any], spec: MeshSpec) -> list[str]:
    """`reference_problems` as ``path: message`` lines."""
    return [f"{format_path(loc)}: {message}" for loc, message in reference_problems(policies, spec)]


def verify_bundle(
    bundle: Bundle,
    *,
    spec: MeshSpec,
    public: ed25519.Ed25519PublicKey | None,
    current: int,
    run: str = "",
) -> PolicyState:
    """The `PolicyState` of ``bundle`` once every check passes; else PolicyBundleError."""
    _check_signature(bundle, public)
    if bundle.mesh != spec.mesh:
        raise PolicyBundleError(
            "wrong_mesh", f"the bundle is for mesh {bundle.mesh!r}, this is mesh {spec.mesh!r}"
        )
    if bundle.run != run:
        raise PolicyBundleError(
            "other_run",
            f"signed for run {bundle.run!r} of the mesh, this is run {run!r} (restarted since)",
        )
    if bundle.version <= current:
        raise PolicyBundleError(
            "stale", f"version {bundle.version} is not newer than version {current} in force"
        )
    try:
        policies = Policies.model_validate(bundle.policies)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = format_path(("policies", *first["loc"]))
        raise PolicyBundleError("invalid", f"{where}: {first['msg']}") from exc
    if digest_of(policies) != bundle.digest:
        raise PolicyBundleError("bad_digest", "the digest does not match the policies")
    problems = check_policies(bundle.policies, spec)
    if problems:
        raise PolicyBundleError("invalid", "; ".join(problems))
    return PolicyState.of(policies, bundle.version)


def _check_signature(bundle: Bundle, public: ed25519.Ed25519PublicKey | None) -> None:
    if public is None:
        raise PolicyBundleError("no_key", "this instance has no policy public key to verify with")
    if bundle.key_id != key_id(public):
        raise PolicyBundleError(
            "unknown_key", f"signed by key {bundle.key_id!r}, this mesh's key is {key_id(public)!r}"
        )
    try:
        public.verify(b64url_decode(bundle.signature), bundle.signed_bytes())
    except (InvalidSignature, JwsError) as exc:
        raise PolicyBundleError("bad_signature", "the signature does not verify") from exc
