"""`eblocks diff` and `eblocks apply`: change the policies of a running mesh, no restart.

Both validate the file as `eblocks validate` does (exit 2, every issue with
file:line), then compare its ``policies`` with the version a running member
reports (``GET /v1/policies``). ``diff`` exits like diff(1): 0 unchanged, 1
changed, 2 invalid or no running mesh to compare with. ``apply`` signs the
next version with the mesh's policy key, POSTs it to one member — the mesh
carries it to the others (`eblocks.policies.sync`) — and waits (bounded) until
every instance reports it. What differs outside ``policies`` (blocks,
patterns, ...) is listed as needing a restart, never applied.

The members are the local supervisor's instances, or with ``--admin-url`` the
one member whose admin port the URL names (a rendered deployment: no
supervisor there). Then the state dir only holds the signing key (and the CA
that issues the CLI's client certificate), the bundle is signed for the run
that member reports, and the wait reads every member's version from its
``/v1/members`` (the gossip records carry it).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer

from eblocks.cli.common import EXIT_INVALID, admin_access, console, err, fail, load_or_exit
from eblocks.cli.run_cmds import MESH_OPTION, STATE_OPTION
from eblocks.errors import PolicyBundleError, SecurityError, SpecError, SupervisorError
from eblocks.runtime.state import StateDir, find_state, pid_alive, read_json

if TYPE_CHECKING:  # bundles, the spec's models, the admin client: imported where used
    from eblocks.policies.bundle import Bundle
    from eblocks.policies.diff import Change
    from eblocks.security.admin import AdminAccess
    from eblocks.spec import MeshSpec

__all__ = ["register"]

_HTTP_TIMEOUT = 2.0
TROUBLE = EXIT_INVALID
"""Exit code when the comparison cannot be made (no running mesh), as diff(1) does:
1 must only ever mean "there are changes"."""


ADMIN_URL_OPTION = typer.Option(
    None,
    "--admin-url",
    help="a member's admin port, e.g. https://10.0.3.7:9090 (a rendered deployment); "
    "default: the instances the local supervisor runs",
)


@dataclass(frozen=True, slots=True)
class _Mesh:
    """Where the running mesh is reached: its members' admin URLs, and with what."""

    state: StateDir
    access: AdminAccess
    members: Callable[[], list[tuple[str, str]]]
    """(instance, admin URL) of the members to ask, in order."""
    versions: Callable[[], dict[str, int | None]] = field(repr=False)
    """Each instance's policy version (None: no answer)."""
    remote: bool = False


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the file would change in the running mesh."""

    mesh: _Mesh
    running: Bundle
    changes: list[Change]
    restart: list[str]

    @property
    def state(self) -> StateDir:
        return self.mesh.state


def _local(state: StateDir) -> _Mesh:
    access = admin_access(state, TROUBLE)

    def members() -> list[tuple[str, str]]:
        return [(str(r["instance"]), access.row_url(r, "")) for r in _members(state)]

    def versions() -> dict[str, int | None]:
        return _versions(access, members())

    return _Mesh(state, access, members, versions)


def _remote(state: StateDir, spec: MeshSpec, url: str) -> _Mesh:
    """One member named by URL; the CLI's client SVID from the state dir's CA when it has one."""
    from eblocks.security.admin import AdminAccess
    from eblocks.security.ca import MeshCA
    from eblocks.security.local import CLI_HOLDER, LocalIssuer, ca_folder

    base = url.rstrip("/")
    try:
        issuer = LocalIssuer(spec, state.path)
        if issuer.enabled and MeshCA.exists(ca_folder(state.path)):  # never make a CA here
            issuer.issue_client()  # a fresh one: the operator's last may have expired
        access = AdminAccess.of(spec, state.path, CLI_HOLDER)
        access.ssl  # noqa: B018 - load the certificate now, to fail here with its path
    except (SecurityError, OSError) as exc:
        fail(f"no client certificate of mesh {spec.mesh!r} in {state.path}: {exc}", TROUBLE)

    def versions() -> dict[str, int | None]:
        try:
            with urllib.request.urlopen(
                f"{base}/v1/members", timeout=_HTTP_TIMEOUT, context=access.ssl
            ) as resp:
                rows = orjson.loads(resp.read())["members"]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            return {base: None}
        return {
            str(r["instance"]): int(r.get("policy_version", 0))
            for r in rows
            if r.get("status") == "alive"
        }

    return _Mesh(state, access, lambda: [(base, base)], versions, remote=True)


def _members(state: StateDir) -> list[dict[str, Any]]:
    """Rows of the instances running now (ready, with an admin port, pid alive)."""
    rows = (read_json(state.state) or {}).get("instances", [])
    return [
        r
        for r in rows
        if r.get("ready") and r.get("admin_port") and r.get("pid") and pid_alive(int(r["pid"]))
    ]


def _get_bundle(access: AdminAccess, base: str) -> Bundle:
    from eblocks.policies.bundle import parse_bundle

    url = f"{base}/v1/policies"
    with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT, context=access.ssl) as resp:
        return parse_bundle(resp.read())


def _running(mesh: _Mesh) -> Bundle:
    """The bundle in force, from the first member that answers."""
    live = mesh.members()
    if not live:
        fail(f"no running member in mesh {mesh.state.mesh!r} (start it with `eblocks up`)", TROUBLE)
    errors = []
    for instance, base in live:
        try:
            return _get_bundle(mesh.access, base)
        except (OSError, PolicyBundleError) as exc:
            errors.append(f"{instance}: {exc}")
    return fail("no member answered GET /v1/policies: " + "; ".join(errors), TROUBLE)


def _find(new: MeshSpec, mesh: str | None, state_dir: Path | None, url: str | None) -> _Mesh:
    if url is not None:
        return _remote(StateDir.for_mesh(mesh or new.mesh, state_dir), new, url)
    try:
        return _local(find_state(mesh or new.mesh, state_dir))
    except SupervisorError as exc:
        return fail(str(exc), TROUBLE)


def _plan(new: MeshSpec, mesh: str | None, state_dir: Path | None, url: str | None) -> _Plan:
    from pydantic import ValidationError

    from eblocks.policies.diff import diff_policies, spec_changes
    from eblocks.spec import load_spec
    from eblocks.spec.policies import Policies

    target = _find(new, mesh, state_dir, url)
    state = target.state
    running = _running(target)
    try:
        policies = Policies.model_validate(running.policies)
    except ValidationError as exc:
        fail(f"the running policies (v{running.version}) do not parse: {exc}", TROUBLE)
    restart: list[str] = []
    try:
        restart = spec_changes(load_spec(state.spec), new)
    except SpecError:
        restart = []  # the copy the mesh started from is gone or unreadable: nothing to compare
    if target.remote:
        restart = []  # the spec the pods run is in their ConfigMap, not here
    return _Plan(target, running, diff_policies(policies, new.policies), restart)


def _show(spec: Path, plan: _Plan) -> None:
    from eblocks.policies.diff import render

    running = plan.running
    console.print(
        f"{spec}: mesh {plan.state.mesh!r}, running policies v{running.version} "
        f"(digest {running.digest[:12]})"
    )
    for line in render(plan.changes):
        typer.echo(line)
    if plan.restart:
        typer.echo("needs a restart (not applied): " + ", ".join(plan.restart))
    n = len(plan.changes)
    console.print(
        f"{n} policy change{'' if n == 1 else 's'}" if n else "no policy change", soft_wrap=True
    )


def diff(
    spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
    admin_url: str | None = ADMIN_URL_OPTION,
) -> None:
    """Show what `eblocks apply` would change; exit 0 unchanged, 1 changed, 2 trouble."""
    new = load_or_exit(spec)
    plan = _plan(new, mesh, state_dir, admin_url)
    _show(spec, plan)
    raise typer.Exit(1 if plan.changes or plan.restart else 0)


def apply(
    spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec"),
    timeout: float = typer.Option(
        30.0, min=0.0, help="seconds to wait for every instance to report the new version"
    ),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
    admin_url: str | None = ADMIN_URL_OPTION,
) -> None:
    """Sign the file's policies as the next version and deliver them to the running mesh."""
    from eblocks.policies.bundle import check_policies, sign_bundle
    from eblocks.policies.keys import load_signing_key, read_run

    new = load_or_exit(spec)
    plan = _plan(new, mesh, state_dir, admin_url)
    _show(spec, plan)
    if not plan.changes:
        return
    running_spec = new if plan.mesh.remote else load_or_exit(plan.state.spec)
    problems = check_policies(new.policies.model_dump(mode="json"), running_spec)
    if problems:
        for problem in problems:
            err.print(f"{spec}: {problem}", soft_wrap=True, markup=False)
        fail(
            "the policies name blocks the running mesh does not have (restart it first)",
            EXIT_INVALID,
        )
    try:
        key = load_signing_key(plan.state.path)
    except SecurityError as exc:
        fail(str(exc))
    # A rendered mesh's run is the one rendered into its pods; the member reports it.
    run = plan.running.run if plan.mesh.remote else read_run(plan.state.path)
    bundle = sign_bundle(plan.state.mesh, plan.running.version + 1, new.policies, key, run=run)
    via = _deliver(plan.mesh, bundle)
    console.print(
        f"applied policies v{bundle.version} (digest {bundle.digest[:12]}) through {via}",
        soft_wrap=True,
    )
    _wait(plan.mesh, bundle.version, timeout)


def _deliver(mesh: _Mesh, bundle: Bundle) -> str:
    """POST the bundle to the first member that takes it; the instance's name."""
    errors = []
    for instance, base in mesh.members():
        request = urllib.request.Request(
            f"{base}/v1/policies",
            data=bundle.dumps(),
            method="POST",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT, context=mesh.access.ssl):
                return instance
        except urllib.error.HTTPError as exc:
            body = _error_body(exc)
            fail(f"{instance} refused the bundle: {body.get('error', exc)}")
        except OSError as exc:
            errors.append(f"{instance}: {exc}")
    return fail("no member took the bundle: " + ("; ".join(errors) or "none running"))


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = orjson.loads(exc.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _versions(access: AdminAccess, members: list[tuple[str, str]]) -> dict[str, int | None]:
    """Each running instance's policy version (None: it did not answer)."""
    out: dict[str, int | None] = {}
    for instance, base in members:
        try:
            out[instance] = _get_bundle(access, base).version
        except (OSError, PolicyBundleError):
            out[instance] = None
    return out


def _wait(mesh: _Mesh, version: int, timeout: float) -> None:
    """Until every instance reports ``version`` (or later), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        versions = mesh.versions()
        done = sorted(i for i, v in versions.items() if v is not None and v >= version)
        if versions and len(done) == len(versions):
            console.print(f"{len(done)}/{len(versions)} instances at v{version}")
            return
        if time.monotonic() >= deadline:
            behind = ", ".join(
                f"{i} (v{v})" if v is not None else f"{i} (no answer)"
                for i, v in sorted(versions.items())
                if i not in done
            )
            console.print(f"{len(done)}/{len(versions)} instances at v{version}", soft_wrap=True)
            fail(f"not every instance reports v{version} after {timeout:g}s: {behind}")
        time.sleep(0.2)


def register(app: typer.Typer) -> None:
    app.command()(diff)
    app.command()(apply)
