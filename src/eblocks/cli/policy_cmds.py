"""`eblocks diff` and `eblocks apply`: change the policies of a running mesh, no restart.

Both validate the file as `eblocks validate` does (exit 2, every issue with
file:line), then compare its ``policies`` with the version a running member
reports (``GET /v1/policies``). ``diff`` exits like diff(1): 0 unchanged, 1
changed, 2 invalid or no running mesh to compare with. ``apply`` signs the
next version with the mesh's policy key, POSTs it to one member — the mesh
carries it to the others (`eblocks.policies.sync`) — and waits (bounded) until
every instance reports it. What differs outside ``policies`` (blocks,
patterns, ...) is listed as needing a restart, never applied.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import typer
from pydantic import ValidationError

from eblocks.cli.common import EXIT_INVALID, admin_access, console, err, fail, load_or_exit
from eblocks.cli.run_cmds import MESH_OPTION, STATE_OPTION
from eblocks.errors import PolicyBundleError, SecurityError, SpecError, SupervisorError
from eblocks.policies.bundle import Bundle, check_policies, parse_bundle, sign_bundle
from eblocks.policies.diff import Change, diff_policies, render, spec_changes
from eblocks.policies.keys import load_signing_key, read_run
from eblocks.runtime import StateDir, find_state
from eblocks.runtime.state import pid_alive, read_json
from eblocks.security.admin import AdminAccess
from eblocks.spec import MeshSpec, load_spec
from eblocks.spec.policies import Policies

__all__ = ["register"]

_HTTP_TIMEOUT = 2.0
TROUBLE = EXIT_INVALID
"""Exit code when the comparison cannot be made (no running mesh), as diff(1) does:
1 must only ever mean "there are changes"."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the file would change in the running mesh."""

    state: StateDir
    running: Bundle
    changes: list[Change]
    restart: list[str]


def _members(state: StateDir) -> list[dict[str, Any]]:
    """Rows of the instances running now (ready, with an admin port, pid alive)."""
    rows = (read_json(state.state) or {}).get("instances", [])
    return [
        r
        for r in rows
        if r.get("ready") and r.get("admin_port") and r.get("pid") and pid_alive(int(r["pid"]))
    ]


def _get_bundle(access: AdminAccess, row: dict[str, Any]) -> Bundle:
    url = access.row_url(row, "/v1/policies")
    with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT, context=access.ssl) as resp:
        return parse_bundle(resp.read())


def _running(state: StateDir) -> Bundle:
    """The bundle in force, from the first member that answers."""
    live = _members(state)
    if not live:
        fail(f"no running member in mesh {state.mesh!r} (start it with `eblocks up`)", TROUBLE)
    access = admin_access(state, TROUBLE)
    errors = []
    for row in live:
        try:
            return _get_bundle(access, row)
        except (OSError, PolicyBundleError) as exc:
            errors.append(f"{row['instance']}: {exc}")
    return fail("no member answered GET /v1/policies: " + "; ".join(errors), TROUBLE)


def _plan(new: MeshSpec, mesh: str | None, state_dir: Path | None) -> _Plan:
    try:
        state = find_state(mesh or new.mesh, state_dir)
    except SupervisorError as exc:
        fail(str(exc), TROUBLE)
    running = _running(state)
    try:
        policies = Policies.model_validate(running.policies)
    except ValidationError as exc:
        fail(f"the running policies (v{running.version}) do not parse: {exc}", TROUBLE)
    restart: list[str] = []
    try:
        restart = spec_changes(load_spec(state.spec), new)
    except SpecError:
        restart = []  # the copy the mesh started from is gone or unreadable: nothing to compare
    return _Plan(state, running, diff_policies(policies, new.policies), restart)


def _show(spec: Path, plan: _Plan) -> None:
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
) -> None:
    """Show what `eblocks apply` would change; exit 0 unchanged, 1 changed, 2 trouble."""
    new = load_or_exit(spec)
    plan = _plan(new, mesh, state_dir)
    _show(spec, plan)
    raise typer.Exit(1 if plan.changes or plan.restart else 0)


def apply(
    spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec"),
    timeout: float = typer.Option(
        30.0, min=0.0, help="seconds to wait for every instance to report the new version"
    ),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Sign the file's policies as the next version and deliver them to the running mesh."""
    new = load_or_exit(spec)
    plan = _plan(new, mesh, state_dir)
    _show(spec, plan)
    if not plan.changes:
        return
    problems = check_policies(new.policies.model_dump(mode="json"), load_or_exit(plan.state.spec))
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
    run = read_run(plan.state.path)
    bundle = sign_bundle(plan.state.mesh, plan.running.version + 1, new.policies, key, run=run)
    via = _deliver(plan.state, bundle)
    console.print(
        f"applied policies v{bundle.version} (digest {bundle.digest[:12]}) through {via}",
        soft_wrap=True,
    )
    _wait(plan.state, bundle.version, timeout)


def _deliver(state: StateDir, bundle: Bundle) -> str:
    """POST the bundle to the first member that takes it; the instance's name."""
    access = admin_access(state)
    errors = []
    for row in _members(state):
        request = urllib.request.Request(
            access.row_url(row, "/v1/policies"),
            data=bundle.dumps(),
            method="POST",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT, context=access.ssl):
                return str(row["instance"])
        except urllib.error.HTTPError as exc:
            body = _error_body(exc)
            fail(f"{row['instance']} refused the bundle: {body.get('error', exc)}")
        except OSError as exc:
            errors.append(f"{row['instance']}: {exc}")
    return fail("no member took the bundle: " + ("; ".join(errors) or "none running"))


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = orjson.loads(exc.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _versions(state: StateDir) -> dict[str, int | None]:
    """Each running instance's policy version (None: it did not answer)."""
    out: dict[str, int | None] = {}
    access = admin_access(state)
    for row in _members(state):
        try:
            out[str(row["instance"])] = _get_bundle(access, row).version
        except (OSError, PolicyBundleError):
            out[str(row["instance"])] = None
    return out


def _wait(state: StateDir, version: int, timeout: float) -> None:
    """Until every instance reports ``version`` (or later), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        versions = _versions(state)
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
