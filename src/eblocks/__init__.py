"""Eblocks: a decentralized service mesh for Python with processing patterns built in.

Write a handler ``async def handle(msg: Message, ctx: Context)``, declare it as a
block in ``mesh.yaml``, and run ``eblocks up mesh.yaml``.
"""

from eblocks._types import Call, Clock, Endpoint, Layer, Resolver, Scaler, Send, SystemClock
from eblocks.block import Block, Context, MeshClient, mesh_client
from eblocks.discovery import SupervisorResolver
from eblocks.errors import (
    BadRequestError,
    ConnectError,
    DiscoveryError,
    EblocksError,
    HandlerError,
    HandlerImportError,
    MeshError,
    MeshTimeoutError,
    NoEndpointsError,
    OverloadedError,
    PacketError,
    PayloadTooLargeError,
    PortInUseError,
    QueueFullError,
    RenderError,
    ScalerError,
    SpecError,
    SpecIssue,
    SupervisorError,
    UpstreamError,
)
from eblocks.message import Message
from eblocks.spec import MeshSpec, load_spec, parse_spec

__version__ = "0.1.0"

__all__ = [
    "BadRequestError",
    "Block",
    "Call",
    "Clock",
    "ConnectError",
    "Context",
    "DiscoveryError",
    "EblocksError",
    "Endpoint",
    "HandlerError",
    "HandlerImportError",
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
    "RenderError",
    "Resolver",
    "Scaler",
    "ScalerError",
    "Send",
    "SpecError",
    "SpecIssue",
    "SupervisorError",
    "SupervisorResolver",
    "SystemClock",
    "UpstreamError",
    "load_spec",
    "mesh_client",
    "parse_spec",
]
