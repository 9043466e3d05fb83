"""`eblocks proxy`: the sidecar in front of a program of any language (docs/sidecar.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from eblocks.cli.common import EXIT_INVALID, fail

__all__ = ["proxy", "register"]


def proxy(
    ctx: typer.Context,
    block: str = typer.Option(..., "--block", help="the block this proxy is (named in the spec)"),
    app_port: int = typer.Option(
        ..., "--app-port", min=1, max=65535, help="the port the app listens on"
    ),
    spec: Path | None = typer.Option(None, "--spec", help="the mesh spec (omit: plain proxy)"),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="the proxy's mesh port (default: the spec's or any)"
    ),
    admin_port: int = typer.Option(0, "--admin-port", min=0, max=65535, help="admin API port"),
    host: str | None = typer.Option(None, "--host", help="address to listen on"),
    admin_host: str | None = typer.Option(
        None, "--admin-host", help="address of the admin port (default: --host; '*': every one)"
    ),
    app_host: str = typer.Option("127.0.0.1", "--app-host", help="address of the app"),
    upstream: list[str] = typer.Option(
        [],
        "--upstream",
        help="BLOCK=LOCALPORT (or BLOCK=LOCALPORT/tcp): a local port the app calls BLOCK on",
    ),
    tcp: bool = typer.Option(False, "--tcp", help="opaque TCP (server-speaks-first protocols)"),
    ready_timeout: float | None = typer.Option(
        None, "--ready-timeout", min=0.1, help="seconds to wait for the app's port"
    ),
    instance: str | None = typer.Option(None, "--instance", help="instance id (default: pid)"),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="state root (default .eblocks or $EBLOCKS_STATE_DIR)"
    ),
    mesh_state: Path | None = typer.Option(
        None, "--mesh-state", hidden=True, help="the mesh's state dir itself (the supervisor's)"
    ),
    supervised: bool = typer.Option(
        False, "--supervised", hidden=True, help="stop when the parent (supervisor) dies"
    ),
    policy_dir: Path | None = typer.Option(
        None,
        "--policy-dir",
        help="where signing.pub and run are, for `eblocks apply` (default: <state>/policy)",
    ),
) -> None:
    """Put a program of any language in the mesh: `eblocks proxy --block B --app-port N -- CMD`.

    Inbound, the proxy is block B (mTLS, authorization, metrics, tracing, access
    log) and forwards to 127.0.0.1:N; with `-- CMD ...` it runs the app itself,
    is ready only once the app's port accepts, and exits with the app's code.
    """
    from eblocks.sidecar.options import parse_upstream
    from eblocks.sidecar.run import ProxyConfig, main

    try:
        upstreams = tuple(parse_upstream(text) for text in upstream)
    except ValueError as exc:
        fail(str(exc), EXIT_INVALID)
    config = ProxyConfig(
        block=block,
        app_port=app_port,
        app_host=app_host,
        spec=spec,
        state_root=state_dir,
        state_dir=mesh_state,
        instance=instance,
        host=host,
        port=port,
        admin_port=admin_port,
        admin_host=admin_host,
        upstreams=upstreams,
        tcp=tcp,
        ready_timeout=ready_timeout,
        command=tuple(ctx.args),
        orphan_watch=supervised,
        policy_dir=policy_dir,
    )
    raise typer.Exit(main(config))


def register(app: typer.Typer) -> None:
    app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(proxy)
