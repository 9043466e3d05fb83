"""The one exception tree of Eblocks.

Every error the mesh raises derives from :class:`EblocksError`; branches are
named by where the failure happens, and each also inherits the builtin a
caller would naturally catch::

    EblocksError
    ├── SpecError (ValueError)             mesh.yaml is wrong; every issue with file:line:col
    ├── HandlerImportError (ImportError)   a block's `module:function` cannot load
    ├── MissingExtraError (ImportError)    the spec asks for an optional part not installed
    ├── SupervisorError (RuntimeError)     the local supervisor cannot start or reach the mesh
    │   ├── PortInUseError (OSError)       a configured port is already bound
    │   └── AppStartError                  the app behind a sidecar cannot run or open its port
    ├── DiscoveryError (RuntimeError)      gossip membership cannot start or join
    │   └── PacketError (ValueError)       a gossip packet was dropped: `reason` says why
    ├── PolicyBundleError (ValueError)     a signed policy bundle was refused: `reason` says why
    ├── RenderError (ValueError)           a valid spec cannot be rendered for a deploy target
    ├── ScalerError (RuntimeError)         a pool could not be resized (supervisor, Kubernetes API)
    ├── SecurityError (RuntimeError)       the mesh CA or an identity cannot be set up or loaded
    │   └── IdentityError (ValueError)     a certificate or SPIFFE ID is not a valid mesh identity
    └── MeshError                          a request failed in the mesh: `reason`, `origin`
        ├── BadRequestError (ValueError)        400 bad_request: malformed mesh headers or body
        ├── PayloadTooLargeError (ValueError)   413 too_large
        ├── RequestTimeoutError (TimeoutError)  408 request_timeout: the body did not arrive in time
        ├── NoEndpointsError (LookupError)      503 no_endpoints: nothing ready to serve a block
        ├── NoRouteError (LookupError)          404 no_route: no gateway route, block or pattern
        ├── OverloadedError                     503 overloaded: a bulkhead or limit is full
        │   └── QueueFullError                  429 overloaded: a manager's queue is full
        ├── RateLimitedError                    429 rate_limited: no token in the bucket
        ├── CircuitOpenError                    503 circuit_open: every endpoint is ejected
        ├── FaultInjectedError                  4xx/5xx fault_injected: a fault rule aborted it
        ├── MeshTimeoutError (TimeoutError)     504 timeout: the deadline passed
        ├── ConnectError (ConnectionError)      502 connect: no connection to an endpoint
        ├── HandlerError                        500 handler: the user's handler raised
        ├── UnauthenticatedError (PermissionError)  401 unauthenticated: no valid identity/token
        ├── ForbiddenError (PermissionError)    403 forbidden: an authorization rule denied it
        └── UpstreamError                       an error response relayed from another block

`respond.py` is the only place a :class:`MeshError` becomes an HTTP status and
headers, and the only place such a response becomes a :class:`MeshError` again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AppStartError",
    "BadRequestError",
    "CircuitOpenError",
    "ConnectError",
    "DiscoveryError",
    "EblocksError",
    "FaultInjectedError",
    "ForbiddenError",
    "HandlerError",
    "HandlerImportError",
    "IdentityError",
    "MeshError",
    "MeshTimeoutError",
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
    "ScalerError",
    "SecurityError",
    "SpecError",
    "SpecIssue",
    "SupervisorError",
    "UnauthenticatedError",
    "UpstreamError",
]


class EblocksError(Exception):
    """Root of every error raised by Eblocks."""


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in a spec: where it is and what was expected."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        # line 0: the file as a whole (it cannot be read), no place in it to point at
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(EblocksError, ValueError):
    """The spec is invalid; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[SpecIssue]) -> None:
        self.issues = tuple(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in spec"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


class HandlerImportError(EblocksError, ImportError):
    """A block's handler reference cannot be imported or is not callable."""

    def __init__(self, block: str, ref: str, cause: str) -> None:
        self.block = block
        self.ref = ref
        self.cause = cause
        super().__init__(f"block {block!r}: cannot load handler {ref!r}: {cause}")


class MissingExtraError(EblocksError, ImportError):
    """The spec asks for an optional part whose package is not installed (an ``eblocks[...]``
    extra, e.g. the OTLP exporter): the message names the field and the install command."""


class SupervisorError(EblocksError, RuntimeError):
    """The local supervisor could not start, reach or stop the mesh."""


class PortInUseError(SupervisorError, OSError):
    """A port named in the spec is already in use."""

    def __init__(self, block: str, host: str, port: int) -> None:
        self.block = block
        self.port = port
        super().__init__(f"block {block!r}: port {host}:{port} is already in use")


class AppStartError(SupervisorError):
    """The app a sidecar proxy fronts could not be run or never opened its port."""


class DiscoveryError(EblocksError, RuntimeError):
    """Gossip membership could not start, bind or join."""


class PacketError(DiscoveryError, ValueError):
    """A gossip packet failed to decode or authenticate and was dropped.

    ``reason`` is one of ``truncated``, ``oversized``, ``bad_magic``,
    ``bad_version``, ``unknown_key``, ``bad_mac`` or ``malformed``; receivers
    count drops by it.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(f"gossip packet dropped: {reason}" + (f": {message}" if message else ""))


class PolicyBundleError(EblocksError, ValueError):
    """A policy bundle (`eblocks apply`) was refused and the policies in force kept.

    ``reason`` is one of ``malformed``, ``no_key``, ``unknown_key``,
    ``bad_signature``, ``wrong_mesh``, ``other_run``, ``stale``, ``bad_digest`` or
    ``invalid``; instances count refusals by it.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"policy bundle refused ({reason}): {message}")


class RenderError(EblocksError, ValueError):
    """A valid spec cannot be rendered for a deployment target (`eblocks render`)."""


class ScalerError(EblocksError, RuntimeError):
    """A `Scaler` could not read or change the size of a pool."""


class SecurityError(EblocksError, RuntimeError):
    """The mesh CA or an instance's identity material cannot be created or loaded."""


class IdentityError(SecurityError, ValueError):
    """A certificate, key or SPIFFE ID is not a valid mesh identity."""


class MeshError(EblocksError):
    """A request failed inside the mesh.

    ``reason`` is the machine-readable cause (sent as ``x-eblocks-error``),
    ``origin`` the block that produced the failure (``x-eblocks-origin``), and
    ``detail`` extra structured fields that go into the JSON error body.
    """

    reason: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        origin: str = "",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.origin = origin
        self.detail: dict[str, Any] = dict(detail or {})

    def with_origin(self, origin: str) -> MeshError:
        """Fill in the origin if the raiser did not know it."""
        if not self.origin:
            self.origin = origin
        return self


class BadRequestError(MeshError, ValueError):
    reason = "bad_request"
    status = 400


class PayloadTooLargeError(MeshError, ValueError):
    reason = "too_large"
    status = 413


class RequestTimeoutError(MeshError, TimeoutError):
    """The caller did not send its request body within the block's ``timeout``."""

    reason = "request_timeout"
    status = 408


class NoEndpointsError(MeshError, LookupError):
    reason = "no_endpoints"
    status = 503


class NoRouteError(MeshError, LookupError):
    """Nothing in the mesh answers to what a request names: no route of an ingress
    gateway matches it (``detail``: method, path), or a call names no block or pattern
    (``detail``: target). Never transient: nobody retries it."""

    reason = "no_route"
    status = 404


class OverloadedError(MeshError):
    reason = "overloaded"
    status = 503


class QueueFullError(OverloadedError):
    """Every worker is busy and the manager's queue is full: come back later.

    ``detail["retry_after"]`` (seconds) becomes the ``retry-after`` header.
    """

    status = 429


class RateLimitedError(MeshError):
    """A rate limit (named in ``detail["rule"]``) had no token left for this request.

    ``detail["retry_after"]`` (seconds until the next token) becomes ``retry-after``.
    """

    reason = "rate_limited"
    status = 429


class CircuitOpenError(MeshError):
    """Every endpoint of the target is ejected by outlier detection (or over its limits)."""

    reason = "circuit_open"
    status = 503


class FaultInjectedError(MeshError):
    """A fault-injection rule aborted the request with the status it names."""

    reason = "fault_injected"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        origin: str = "",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, origin=origin, detail=detail)
        self.status = status  # type: ignore[misc]  # the rule's status, per instance


class MeshTimeoutError(MeshError, TimeoutError):
    reason = "timeout"
    status = 504


class ConnectError(MeshError, ConnectionError):
    reason = "connect"
    status = 502


class HandlerError(MeshError):
    reason = "handler"
    status = 500


class UnauthenticatedError(MeshError, PermissionError):
    """The caller has no verified identity or a valid request token."""

    reason = "unauthenticated"
    status = 401


class ForbiddenError(MeshError, PermissionError):
    """An authorization rule (named in ``detail["rule"]``) denied the request."""

    reason = "forbidden"
    status = 403


class UpstreamError(MeshError):
    """An error response received from another block, relayed unchanged.

    The status, reason, origin and body are those the failing block sent, so a
    pipeline's caller sees the stage that actually failed, not the first hop.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str,
        origin: str,
        detail: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, origin=origin, detail=detail)
        self.upstream_status = status
        self.upstream_reason = reason
        self.retry_after = retry_after
