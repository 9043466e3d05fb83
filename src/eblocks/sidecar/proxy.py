"""`Sidecar`: one proxy's block and upstream ports, assembled and started in order.

The block is an ordinary `Block` — an app block whose app forwards
(`HttpForwarder`), or, in TCP mode, a block whose PM socket splices
(`TcpPort`) — so its inbound path, admin API, metrics, tracing and access
log are the same code as every other block's. Upstream ports open first
(the app may call out while it starts); the block serves last, once the
app's port accepts, so ``/readyz`` is never 200 before the app can answer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from eblocks.block import Block, MeshClient
from eblocks.sidecar.http import DEFAULT_IDLE, HttpForwarder
from eblocks.sidecar.options import Upstream
from eblocks.sidecar.outbound import UpstreamPort
from eblocks.sidecar.tcp import TcpPort, TcpUpstream
from eblocks.spec.models import BlockSettings
from eblocks.telemetry import Telemetry

if TYPE_CHECKING:
    from eblocks.security import Auth

__all__ = ["Sidecar"]

log = logging.getLogger("eblocks.sidecar")


class Sidecar:
    """The block in front of an app at ``app`` and the app's ports into the mesh."""

    def __init__(
        self,
        name: str,
        app: tuple[str, int],
        *,
        tcp: bool = False,
        upstreams: tuple[Upstream, ...] = (),
        settings: BlockSettings | None = None,
        client: MeshClient | None = None,
        telemetry: Telemetry | None = None,
        auth: Auth | None = None,
        instance: str | None = None,
    ) -> None:
        self.name = name
        self.app = app
        if upstreams and client is None:
            raise ValueError("upstreams need a mesh client")
        self.block = self._block(name, tcp, settings, client, telemetry, auth, instance)
        tel = self.block.telemetry
        drain = self.block.settings.drain
        self.upstreams: list[UpstreamPort | TcpUpstream] = []
        self._wanted: list[int] = []
        for up in upstreams:
            assert client is not None
            port: UpstreamPort | TcpUpstream
            if up.protocol == "tcp":
                port = TcpUpstream(name, up.target, client.endpoints, tel, auth=auth, drain=drain)
            else:
                port = UpstreamPort(
                    name, up.target, client, max_body=self.block.settings.max_body, drain=drain
                )
            self.upstreams.append(port)
            self._wanted.append(up.port)

    def _block(
        self,
        name: str,
        tcp: bool,
        settings: BlockSettings | None,
        client: MeshClient | None,
        telemetry: Telemetry | None,
        auth: Auth | None,
        instance: str | None,
    ) -> Block:
        plan = client.plan if client is not None else None
        if not tcp:
            idle = settings.timeout if settings is not None else DEFAULT_IDLE
            app = HttpForwarder(name, *self.app, idle=idle).application()
            return Block(
                name,
                app=app,
                settings=settings,
                plan=plan,
                client=client,
                instance=instance,
                telemetry=telemetry,
                auth=auth,
            )
        tel = telemetry or (client.telemetry if client is not None else None)
        tel = tel or Telemetry(name, instance or f"{name}-proxy")
        drain = settings.drain if settings is not None else 10.0
        socket = TcpPort(name, self.app, tel, auth=auth, drain=drain)
        block = Block(
            name,
            socket=socket,
            settings=settings,
            plan=plan,
            client=client,
            instance=instance,
            telemetry=tel,
            auth=auth,
        )

        def count(delta: int) -> None:
            block.inflight += delta  # open connections are the TCP block's in-flight work

        socket.on_count = count
        return block

    async def open_upstreams(self) -> None:
        """Bind every upstream port on 127.0.0.1 (the app may call out from its start)."""
        for port, wanted in zip(self.upstreams, self._wanted, strict=True):
            await port.start(wanted)
            log.info("upstream %s on 127.0.0.1:%d", port.target, port.port)

    async def serve(
        self, host: str, port: int, admin_port: int = 0, admin_host: str | None = None
    ) -> None:
        """Start the block: PM and admin ports; ``/readyz`` answers 200 from now on.

        ``admin_host``: as `Block.start` takes it (default ``host``; ``*`` every address).
        """
        await self.block.start(host, port, admin_port, admin_host)

    async def stop_block(self) -> None:
        """Unready, drain in-flight requests (bounded by the block's drain), close."""
        await self.block.stop()

    async def close_upstreams(self) -> None:
        for port in self.upstreams:
            await port.close()
        if self.block.client is not None:
            await self.block.client.aclose()  # calls made while the app stopped reopened it
