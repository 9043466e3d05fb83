"""`eblocks diff` and `eblocks apply`: change the policies of a running mesh, no restart.

Both validate the file as `eblocks validate` does (exit 2, every issue with
file:line), then compare its ``policies`` with the version a running member
reports (``GET /v1/policies``). ``diff`` exits like diff(1): 0 unchanged, 1
changed, 2 invalid or no running mesh to compare with. ``apply`` signs the
next version with the mesh's policy key, POSTs it to one member — the mesh
carries it to the others (`eblocks.policies.sync`) — and waits (bounded) until
every instance reports it. What differs outside ``policies`` (blocks,
patterns, ...) is listed as needing a restart, never applied. Both print the
spec's warnings as `eblocks validate` does (file:line:col), routes that can
never match among them (`eblocks.policies.lint`).

``apply --timeout`` bounds the whole exchange with the mesh: members are asked
at once (one thread each), and every request gets at most the time left (at
most 2 s; a step that cannot be skipped — reading the running version, the
POST, one poll — gets at least 0.5 s). A member that does not answer in time
is named, never waited for in turn.

The members are the local supervisor's instances, or with ``--admin-url`` the
one member whose admin port the URL names (a rendered deployment: no
supervisor there). Then the state dir only holds the signing key (and the CA
that issues the CLI's client certificate), the bundle is signed for the run
that member reports, and the wait reads every member's version from its
``/v1/members`` (the gossip records carry it).
"""

from __future__ import annotations

import math
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer
from rich.markup import escape

from eblocks.cli.common import (
    EXIT_INVALID,
    admin_access,
    console,
    err,
    fail,
    load_and_warn,
    load_or_exit,
)
from eblocks.cli.run_cmds import MESH_OPTION, STATE_OPTION
from eblocks.errors import (
    PolicyBundleError,
    SecurityError,
    SpecError,
    SupervisorError,
)
from eblocks.runtime.state import StateDir, find_state, pid_alive, read_json

if TYPE_CHECKING:  # bundles, the spec's models, the admin client: imported where used
    from eblocks.policies.bundle import Bundle
    from eblocks.policies.diff import Change
    from eblocks.security.admin import AdminAccess
    from eblocks.spec import MeshSpec

__all__ = ["register"]

_HTTP_TIMEOUT = 2.0
"""The longest any one request to a member may take."""
_MIN_REQUEST = 0.5
"""What a step `apply` cannot skip gets even when ``--timeout`` has (nearly) run out."""
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
    versions: Callable[[float], dict[str, int | None]] = field(repr=False)
    """Each instance's policy version (None: no answer), asked at once, within the seconds
    given."""
    remote: bool = False


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the file would change in the running mesh."""

    mesh: _Mesh
    running: Bundle
    changes: list[Change]
    restart: list[str]
    answered: tuple[str, ...] = ()
    """The members that answered GET /v1/policies, in order: the POST tries them first."""

    @property
    def state(self) -> StateDir:
        return self.mesh.state


def _local(state: StateDir) -> _Mesh:
    access = admin_access(state, TROUBLE)

    def members() -> list[tuple[str, str]]:
        return [(str(r["instance"]), access.row_url(r, "")) for r in _members(state)]

    def versions(within: float) -> dict[str, int | None]:
        return _versions(access, members(), within)

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

    context = access.ssl

    def alive(url: str, within: float) -> dict[str, int | None]:
        try:
            with urllib.request.urlopen(
                f"{url}/v1/members", timeout=within, context=context
            ) as resp:
                rows = orjson.loads(resp.read())["members"]
            return {
                str(r["instance"]): int(r.get("policy_version", 0))
                for r in rows
                if r.get("status") == "alive"
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise OSError(f"unexpected /v1/members answer: {exc}") from exc

    def versions(within: float) -> dict[str, int | None]:
        answers, _ = _ask_all([(base, base)], alive, within)
        return answers.get(base) or {base: None}

    return _Mesh(state, access, lambda: [(base, base)], versions, remote=True)


def _members(state: StateDir) -> list[dict[str, Any]]:
    """Rows of the instances running now (ready, with an admin port, pid alive)."""
    rows = (read_json(state.state) or {}).get("instances", [])
    return [
        r
        for r in rows
        if r.get("ready") and r.get("admin_port") and r.get("pid") and pid_alive(int(r["pid"]))
    ]


def _get_bundle(context: ssl.SSLContext | None, base: str, within: float) -> Bundle:
    from eblocks.policies.bundle import parse_bundle

    url = f"{base}/v1/policies"
    with urllib.request.urlopen(url, timeout=within, context=context) as resp:
        return parse_bundle(resp.read())


_T = TypeVar("_T")


def _ask_all(
    members: Sequence[tuple[str, str]], ask: Callable[[str, float], _T], within: float
) -> tuple[dict[str, _T], dict[str, str]]:
    """``ask(url, within)`` of every member at once: (answers, why each other one gave none).

    Returns after ``within`` seconds at the latest (each request's own timeout is
    ``within`` too, which also bounds the wait for a late thread at exit); a member
    still busy then has ``no answer within ...s``.
    """
    if not members:
        return {}, {}
    pool = ThreadPoolExecutor(max_workers=len(members), thread_name_prefix="apply")
    asked = {pool.submit(ask, url, within): instance for instance, url in members}
    wait(asked, timeout=within + 0.05)  # a request past its own timeout: not waited for
    pool.shutdown(wait=False, cancel_futures=True)
    answers: dict[str, _T] = {}
    failed: dict[str, str] = {}
    for future, instance in asked.items():
        if not future.done():
            failed[instance] = f"no answer within {within:.3g}s"
        elif isinstance(error := future.exception(), OSError | PolicyBundleError):
            failed[instance] = _why(error, within)
        elif error is not None:
            raise error
        else:
            answers[instance] = future.result()
    return answers, failed


def _why(exc: BaseException, within: float) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {within:.3g}s"
    return str(exc)


def _within(deadline: float, *, needed: bool = False) -> float:
    """Seconds one request may take: what is left of ``deadline``, at most `_HTTP_TIMEOUT`;
    at least `_MIN_REQUEST` for a step that cannot be skipped (``needed``)."""
    left = deadline - time.monotonic()
    return min(_HTTP_TIMEOUT, max(left, _MIN_REQUEST) if needed else left)


def _running(mesh: _Mesh, deadline: float) -> tuple[Bundle, tuple[str, ...]]:
    """The bundle in force (the newest any member reports, asking all at once), and the
    members that answered, in order. The others are named in a warning."""
    live = mesh.members()
    if not live:
        fail(f"no running member in mesh {mesh.state.mesh!r} (start it with `eblocks up`)", TROUBLE)
    context = mesh.access.ssl
    answers, failed = _ask_all(
        live, lambda url, t: _get_bundle(context, url, t), _within(deadline, needed=True)
    )
    silent = [(i, failed[i]) for i, _ in live if i not in answers]
    if not answers:
        fail(
            "no member answered GET /v1/policies: " + "; ".join(f"{i}: {w}" for i, w in silent),
            TROUBLE,
        )
    for instance, why in silent:
        err.print(
            f"[yellow]warning:[/] {escape(f'{instance} did not answer GET /v1/policies: {why}')}",
            soft_wrap=True,
        )
    answered = tuple(i for i, _ in live if i in answers)
    newest = max(answered, key=lambda i: answers[i].version)  # the first of the newest
    return answers[newest], answered


def _find(new: MeshSpec, mesh: str | None, state_dir: Path | None, url: str | None) -> _Mesh:
    if url is not None:
        return _remote(StateDir.for_mesh(mesh or new.mesh, state_dir), new, url)
    try:
        return _local(find_state(mesh or new.mesh, state_dir))
    except SupervisorError as exc:
        return fail(str(exc), TROUBLE)


def _plan(
    new: MeshSpec, mesh: str | None, state_dir: Path | None, url: str | None, deadline: float
) -> _Plan:
    from pydantic import ValidationError

    from eblocks.policies.diff import diff_policies, spec_changes
    from eblocks.spec import load_spec
    from eblocks.spec.policies import Policies

    target = _find(new, mesh, state_dir, url)
    state = target.state
    running, answered = _running(target, deadline)
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
    return _Plan(target, running, diff_policies(policies, new.policies), restart, answered)


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
    new = load_and_warn(spec)
    plan = _plan(new, mesh, state_dir, admin_url, math.inf)  # each request: 2 s at most
    _show(spec, plan)
    raise typer.Exit(1 if plan.changes or plan.restart else 0)


def apply(
    spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec"),
    timeout: float = typer.Option(
        30.0,
        min=0.0,
        help="seconds for the whole exchange with the mesh, waiting until every instance "
        "reports the new version included",
    ),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
    admin_url: str | None = ADMIN_URL_OPTION,
) -> None:
    """Sign the file's policies as the next version and deliver them to the running mesh."""
    from eblocks.policies.bundle import reference_problems, sign_bundle
    from eblocks.policies.keys import load_signing_key, read_run
    from eblocks.spec.marks import SpecMarks

    deadline = time.monotonic() + timeout
    new = load_and_warn(spec)
    plan = _plan(new, mesh, state_dir, admin_url, deadline)
    _show(spec, plan)
    if not plan.changes:
        return
    running_spec = new if plan.mesh.remote else load_or_exit(plan.state.spec)
    problems = reference_problems(new.policies.model_dump(mode="json"), running_spec)
    if problems:
        marks = SpecMarks.of_file(spec)  # file:line:col, as `eblocks validate` gives them
        for loc, message in problems:
            err.print(str(marks.issue(loc, message)), soft_wrap=True, markup=False)
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
    via = _deliver(plan.mesh, bundle, deadline, plan.answered)
    console.print(
        f"applied policies v{bundle.version} (digest {bundle.digest[:12]}) through {via}",
        soft_wrap=True,
    )
    _wait(plan.mesh, bundle.version, deadline, timeout)


def _deliver(mesh: _Mesh, bundle: Bundle, deadline: float, answered: Sequence[str]) -> str:
    """POST the bundle to one member at a time until one takes it — first those that just
    answered, each within the time left; the instance's name."""
    members = mesh.members()
    ordered = sorted(members, key=lambda m: m[0] not in answered)  # stable: else in order
    context = mesh.access.ssl
    body = bundle.dumps()
    errors = []
    for n, (instance, base) in enumerate(ordered):
        within = _within(deadline, needed=n == 0)
        if within <= 0:
            errors.append(f"{instance}: not tried, the --timeout is spent")
            break
        answers, failed = _ask_all(
            [(instance, base)], lambda url, t: _post(context, url, body, t), within
        )
        refusal = answers.get(instance)
        if refusal is None:
            errors.append(f"{instance}: {failed[instance]}")
        elif refusal:
            fail(f"{instance} refused the bundle: {refusal}")
        else:
            return instance
    return fail("no member took the bundle: " + ("; ".join(errors) or "none running"))


def _post(context: ssl.SSLContext | None, base: str, body: bytes, within: float) -> str:
    """POST a bundle: "" when taken, the member's error when refused; OSError: no answer."""
    request = urllib.request.Request(
        f"{base}/v1/policies",
        data=body,
        method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=within, context=context):
            return ""
    except urllib.error.HTTPError as exc:
        return str(_error_body(exc).get("error", exc)) or str(exc)


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = orjson.loads(exc.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _versions(
    access: AdminAccess, members: list[tuple[str, str]], within: float
) -> dict[str, int | None]:
    """Each running instance's policy version, all asked at once (None: no answer in time)."""
    context = access.ssl
    answers, _ = _ask_all(members, lambda url, t: _get_bundle(context, url, t).version, within)
    return {instance: answers.get(instance) for instance, _ in members}


def _wait(mesh: _Mesh, version: int, deadline: float, timeout: float) -> None:
    """Until every instance reports ``version`` (or later), until ``deadline`` at most.

    Each poll asks every member at once, within the time left; a member that
    answered before keeps the newest version it reported when a later poll gets
    no answer from it. Those never heard from are named ``(no answer)``.
    """
    latest: dict[str, int] = {}
    needed = True  # one poll at least, however little time is left
    while True:
        versions = mesh.versions(_within(deadline, needed=needed))
        needed = False
        for instance, v in versions.items():
            if v is not None:
                latest[instance] = max(v, latest.get(instance, v))
        done = sorted(i for i in versions if latest.get(i, -1) >= version)
        if versions and len(done) == len(versions):
            console.print(f"{len(done)}/{len(versions)} instances at v{version}")
            return
        left = deadline - time.monotonic()
        if left <= 0.05:  # too little for one more request
            behind = ", ".join(
                f"{i} (v{latest[i]})" if i in latest else f"{i} (no answer)"
                for i in sorted(versions)
                if i not in done
            )
            console.print(f"{len(done)}/{len(versions)} instances at v{version}", soft_wrap=True)
            fail(f"not every instance reports v{version} after {timeout:g}s: {behind}")
        time.sleep(min(0.2, left - 0.05))


def register(app: typer.Typer) -> None:
    app.command()(diff)
    app.command()(apply)
