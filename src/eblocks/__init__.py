"""Eblocks: a decentralized service mesh for Python with processing patterns built in.

Write a handler ``async def handle(msg: Message, ctx: Context)``, declare it as a
block in ``mesh.yaml``, and run ``eblocks up mesh.yaml``.
"""

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
    NoEndpointsError,
    OverloadedError,
    PacketError,
    PayloadTooLargeError,
    PortInUseError,
    QueueFullError,
    RateLimitedError,
    RenderError,
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
    "NoEndpointsError",
    "OverloadedError",
    "PacketError",
    "PayloadTooLargeError",
    "PortInUseError",
    "QueueFullError",
    "RateLimitedError",
    "RenderError",
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
