"""The instance side of `eblocks apply`: accept, fetch, verify and swap policy bundles.

On the admin port::

    GET  /v1/policies   the bundle in force (version 0: the spec's policies, unsigned)
    POST /v1/policies   a signed bundle -> verify -> swap -> 200 {version, digest}
                        refused: 400 malformed/invalid/bad_digest, 403 no_key/unknown_key/
                        bad_signature/wrong_mesh/other_run, 409 stale; body {error, reason}

The instance that accepts a POST also writes it to ``<state>/policy/bundle.json``
(a restarted instance resumes from it). From there the version travels:

- ``discovery.mode: supervisor``: every instance of the machine watches that
  file (a stat every ``interval``) and verifies what it reads before swapping.
- ``discovery.mode: gossip``: the version is in each member's gossip record
  (`runtime.membership` republishes it on every swap); an instance that sees a
  peer at a higher version fetches that peer's ``GET /v1/policies`` and
  verifies it. A peer's bundle is trusted for its signature, never for who
  served it.

Every refusal is counted by reason (``eblocks_policy_bundles_refused_total``)
and logged with where the bundle came from; the policies in force stay.
A swap is one attribute store (`LivePolicies.swap`): a request in flight
finishes on the version it started with.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from eblocks.errors import PolicyBundleError
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.bundle import Bundle, bootstrap, parse_bundle, verify_bundle
from eblocks.policies.keys import bundle_file, load_public_key, read_run
from eblocks.security.admin import AdminAccess
from eblocks.security.identity import replace_file
from eblocks.spec.models import MeshSpec
from eblocks.telemetry.core import Hooks

__all__ = ["Peer", "PolicySync", "applied_policies", "follow_applied"]

log = logging.getLogger("eblocks.policies")

_STATUS = {
    "malformed": 400,
    "invalid": 400,
    "bad_digest": 400,
    "stale": 409,
}  # the rest (key, signature, mesh, run) are 403: not this mesh's to accept
_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """A member that may hold a newer bundle, as its gossip record says."""

    instance: str
    block: str  # its admin port's scheme follows the block's mTLS mode
    host: str
    admin_port: int
    policy_version: int


class PolicySync:
    """Accepts bundles for one instance and keeps its `LivePolicies` at the newest."""

    def __init__(
        self,
        spec: MeshSpec,
        live: LivePolicies,
        state: Path,
        public: ed25519.Ed25519PublicKey | None,
        *,
        watch_file: bool,
        run: str = "",
        interval: float = 0.5,
        admin: AdminAccess | None = None,
    ) -> None:
        """``admin``: how this instance reaches its peers' admin ports (its SVID)."""
        self.spec = spec
        self.live = live
        self.state = state
        self.public = public
        self.watch_file = watch_file
        self.run_id = run
        self.interval = interval
        self.admin = admin or AdminAccess(spec, None)
        self.bundle: Bundle = bootstrap(spec.mesh, run, live.current)
        self.refused: collections.Counter[str] = collections.Counter()
        self.swaps = 0
        self._stamp: tuple[int, int] | None = None
        self._failed_peers: set[tuple[str, int]] = set()

    # -- accepting -----------------------------------------------------------------------

    def accept(self, bundle: Bundle, source: str) -> PolicyState:
        """Verify and swap ``bundle`` (from ``source``, for the log); PolicyBundleError if not."""
        try:
            state = verify_bundle(
                bundle,
                spec=self.spec,
                public=self.public,
                current=self.live.current.version,
                run=self.run_id,
            )
        except PolicyBundleError as exc:
            self.refused[exc.reason] += 1
            log.warning("%s (bundle v%d from %s)", exc, bundle.version, source)
            raise
        self.live.swap(state)  # newer: verify_bundle checked it against the version in force
        self.bundle = bundle
        self.swaps += 1
        log.info(
            "policies v%d in force (digest %s, from %s)", state.version, state.digest[:12], source
        )
        return state

    def resume(self) -> None:
        """At start: take the mesh's last applied bundle from the state dir, if any."""
        path = bundle_file(self.state)
        self._stamp = _stamp(path)
        if self._stamp is not None:
            self._take_file(path)

    def _take_file(self, path: Path) -> None:
        try:
            bundle = parse_bundle(path.read_bytes())
        except OSError:
            return  # replaced between stat and read: the next poll reads the new one
        except PolicyBundleError as exc:
            self.refused[exc.reason] += 1
            log.warning("%s (from %s)", exc, path)
            return
        if bundle.version > self.live.current.version:
            with contextlib.suppress(PolicyBundleError):  # counted and logged by accept
                self.accept(bundle, str(path))

    # -- admin API ------------------------------------------------------------------------

    async def get(self, _: web.Request) -> web.Response:
        return web.Response(body=self.bundle.dumps(), content_type="application/json")

    async def post(self, request: web.Request) -> web.Response:
        source = f"POST by {request.remote or 'unknown'}"
        body = await request.content.read(_MAX_BODY + 1)
        try:
            if len(body) > _MAX_BODY:
                raise PolicyBundleError("malformed", f"larger than {_MAX_BODY} bytes")
            bundle = parse_bundle(body)
        except PolicyBundleError as exc:
            self.refused[exc.reason] += 1
            log.warning("%s (from %s)", exc, source)
            return _refusal(exc)
        try:
            state = self.accept(bundle, source)
        except PolicyBundleError as exc:
            return _refusal(exc)
        path = bundle_file(self.state)
        path.parent.mkdir(parents=True, exist_ok=True)  # a pod's fresh state dir has none
        replace_file(path, bundle.dumps(), 0o644)
        self._stamp = _stamp(path)  # ours: no need to read it back
        return web.json_response({"version": state.version, "digest": state.digest})

    # -- delivery -------------------------------------------------------------------------

    async def run(self, peers: Callable[[], Iterable[Peer]] | None = None) -> None:
        """Until cancelled: watch the state dir's bundle and/or fetch from newer peers."""
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with self.admin.session(timeout) as http:
            while True:
                try:
                    if self.watch_file:
                        self._poll_file()
                    if peers is not None:
                        await self._fetch_newer(http, peers())
                except Exception:  # delivery must go on whatever one round met
                    log.exception("policy sync round failed")
                await asyncio.sleep(self.interval)

    def _poll_file(self) -> None:
        path = bundle_file(self.state)
        stamp = _stamp(path)
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            self._take_file(path)

    async def _fetch_newer(self, http: aiohttp.ClientSession, peers: Iterable[Peer]) -> None:
        current = self.live.current.version
        newer = sorted(
            (p for p in peers if p.policy_version > current and p.admin_port),
            key=lambda p: -p.policy_version,
        )
        for peer in newer[:3]:
            if (peer.instance, peer.policy_version) in self._failed_peers:
                continue
            if await self._fetch_from(http, peer):
                return

    async def _fetch_from(self, http: aiohttp.ClientSession, peer: Peer) -> bool:
        url = self.admin.url(peer.block, peer.host, peer.admin_port, "/v1/policies")
        source = f"peer {peer.instance} ({peer.host}:{peer.admin_port})"
        try:
            async with http.get(url) as resp:
                resp.raise_for_status()
                body = await resp.content.read(_MAX_BODY + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("cannot fetch policies v%d from %s: %s", peer.policy_version, source, exc)
            return False  # unreachable now; retried next round
        try:
            bundle = parse_bundle(body)
        except PolicyBundleError as exc:
            self.refused[exc.reason] += 1
            log.warning("%s (from %s)", exc, source)
            self._failed_peers.add((peer.instance, peer.policy_version))
            return False
        if bundle.version <= self.live.current.version:
            return False  # it moved on, or we did
        try:
            self.accept(bundle, source)  # counts and logs a refusal
        except PolicyBundleError:
            self._failed_peers.add((peer.instance, peer.policy_version))  # not again
            return False
        return True

    # -- metrics --------------------------------------------------------------------------

    def publish_gauges(self, hooks: Hooks) -> None:
        """``eblocks_policy_version``, ``_swaps_total`` and ``_bundles_refused_total{reason}``."""
        hooks.gauge(
            "eblocks_policy_version",
            "Version of the policies in force (0: the spec's own)",
            (),
            lambda: [((), float(self.live.current.version))],
        )
        hooks.counter(
            "eblocks_policy_swaps",
            "Policy bundles accepted and put in force",
            (),
            lambda: [((), float(self.swaps))],
        )
        hooks.counter(
            "eblocks_policy_bundles_refused",
            "Policy bundles refused, by reason",
            ("reason",),
            lambda: [((r,), float(n)) for r, n in sorted(self.refused.items())],
        )


def applied_policies(spec: MeshSpec, state: Path, trust: Path | None = None) -> LivePolicies:
    """The policies in force in the mesh whose state dir is ``state``, for a client of it.

    The last bundle `eblocks apply` delivered (``<state>/policy/bundle.json``),
    verified as an instance verifies it (`verify_bundle`: signature, mesh, run,
    version, policies) with the same public key and run id; the spec's own
    policies (version 0) when there is none. PolicyBundleError when the file does
    not verify, SecurityError when the public key cannot be loaded, OSError when
    the file cannot be read: never silently the wrong policies.
    """
    live = LivePolicies.of(spec.policies)
    path = bundle_file(state)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return live
    bundle = parse_bundle(data)
    live.swap(
        verify_bundle(
            bundle,
            spec=spec,
            public=load_public_key(state, trust),
            current=live.current.version,
            run=read_run(state, trust),
        )
    )
    return live


async def follow_applied(
    live: LivePolicies,
    spec: MeshSpec,
    state: Path,
    *,
    trust: Path | None = None,
    interval: float = 1.0,
) -> None:
    """Until cancelled: keep ``live`` at the bundle `eblocks apply` leaves in ``state``.

    For a client that runs for long (a script's `MeshClient`): what instances
    do with the state dir's file, verified the same way (`PolicySync` with
    ``watch_file``); a bundle that does not verify is logged and left. Start
    from `applied_policies`::

        live = applied_policies(spec, state)
        follow = asyncio.create_task(follow_applied(live, spec, state))
    """
    sync = PolicySync(
        spec,
        live,
        state,
        load_public_key(state, trust),
        watch_file=True,
        run=read_run(state, trust),
        interval=interval,
    )
    sync.resume()
    await sync.run()


def _refusal(exc: PolicyBundleError) -> web.Response:
    return web.json_response(
        {"error": str(exc), "reason": exc.reason}, status=_STATUS.get(exc.reason, 403)
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)
