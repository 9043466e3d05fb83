"""Eblocks: a decentralized service mesh for Python with processing patterns built in.

Write a handler ``async def handle(msg: Message, ctx: Context)``, declare it as a
block in ``mesh.yaml``, and run ``eblocks up mesh.yaml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eblocks._lazy import lazy_exports

if TYPE_CHECKING:
    from eblocks._types import Call, Clock, Endpoint, Layer, Resolver, Scaler, Send, SystemClock
    from eblocks.block import Block, Context, MeshClient, mesh_client
    from eblocks.discovery import SupervisorResolver
    from eblocks.errors import (
        AppStartError,
        BadRequestError,
        CircuitOpenError,
        ConnectError,
        DiscoveryError,
        EblocksError,
        FaultInjectedError,
        ForbiddenError,
        HandlerError,
        HandlerImportError,
        IdentityError,
        MeshError,
        MeshTimeoutError,
        MissingExtraError,
        NoEndpointsError,
        NoRouteError,
        OverloadedError,
        PacketError,
        PayloadTooLargeError,
        PolicyBundleError,
        PortInUseError,
        QueueFullError,
        RateLimitedError,
        RenderError,
        RequestTimeoutError,
        ScalerError,
        SecurityError,
        SpecError,
        SpecIssue,
        SupervisorError,
        UnauthenticatedError,
        UpstreamError,
    )
    from eblocks.message import Message
    from eblocks.spec import MeshSpec, load_spec, parse_spec

__version__ = "0.1.0"

# What ``from eblocks import X`` gives, and the module X lives in. Imported on first use
# (PEP 562): the CLI, the supervisor and a block's process import only what they run.
_EXPORTS: dict[str, str] = {
    "Call": "eblocks._types",
    "Clock": "eblocks._types",
    "Endpoint": "eblocks._types",
    "Layer": "eblocks._types",
    "Resolver": "eblocks._types",
    "Scaler": "eblocks._types",
    "Send": "eblocks._types",
    "SystemClock": "eblocks._types",
    "Block": "eblocks.block",
    "Context": "eblocks.block",
    "MeshClient": "eblocks.block",
    "mesh_client": "eblocks.block",
    "SupervisorResolver": "eblocks.discovery",
    "AppStartError": "eblocks.errors",
    "BadRequestError": "eblocks.errors",
    "CircuitOpenError": "eblocks.errors",
    "ConnectError": "eblocks.errors",
    "DiscoveryError": "eblocks.errors",
    "EblocksError": "eblocks.errors",
    "FaultInjectedError": "eblocks.errors",
    "ForbiddenError": "eblocks.errors",
    "HandlerError": "eblocks.errors",
    "HandlerImportError": "eblocks.errors",
    "MissingExtraError": "eblocks.errors",
    "IdentityError": "eblocks.errors",
    "MeshError": "eblocks.errors",
    "MeshTimeoutError": "eblocks.errors",
    "NoEndpointsError": "eblocks.errors",
    "NoRouteError": "eblocks.errors",
    "OverloadedError": "eblocks.errors",
    "PacketError": "eblocks.errors",
    "PayloadTooLargeError": "eblocks.errors",
    "PolicyBundleError": "eblocks.errors",
    "PortInUseError": "eblocks.errors",
    "QueueFullError": "eblocks.errors",
    "RequestTimeoutError": "eblocks.errors",
    "RateLimitedError": "eblocks.errors",
    "RenderError": "eblocks.errors",
    "ScalerError": "eblocks.errors",
    "SecurityError": "eblocks.errors",
    "SpecError": "eblocks.errors",
    "SpecIssue": "eblocks.errors",
    "SupervisorError": "eblocks.errors",
    "UnauthenticatedError": "eblocks.errors",
    "UpstreamError": "eblocks.errors",
    "Message": "eblocks.message",
    "MeshSpec": "eblocks.spec",
    "load_spec": "eblocks.spec",
    "parse_spec": "eblocks.spec",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

__all__ = [
    "AppStartError",
    "BadRequestError",
    "Block",
    "Call",
    "CircuitOpenError",
    "Clock",
    "ConnectError",
    "Context",
    "DiscoveryError",
    "EblocksError",
    "Endpoint",
    "FaultInjectedError",
    "ForbiddenError",
    "HandlerError",
    "HandlerImportError",
    "IdentityError",
    "Layer",
    "MeshClient",
    "MeshError",
    "MeshSpec",
    "MeshTimeoutError",
    "Message",
    "MissingExtraError",
    "NoEndpointsError",
    "NoRouteError",
    "OverloadedError",
    "PacketError",
    "PayloadTooLargeError",
    "PolicyBundleError",
    "PortInUseError",
    "QueueFullError",
    "RateLimitedError",
    "RenderError",
    "RequestTimeoutError",
    "Resolver",
    "Scaler",
    "ScalerError",
    "SecurityError",
    "Send",
    "SpecError",
    "SpecIssue",
    "SupervisorError",
    "SupervisorResolver",
    "SystemClock",
    "UnauthenticatedError",
    "UpstreamError",
    "load_spec",
    "mesh_client",
    "parse_spec",
]
