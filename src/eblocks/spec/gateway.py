"""Gateways: where traffic enters the mesh (ingress) and leaves it (egress); docs/gateways.md.

A gateway is a block whose PM Eblocks provides::

    blocks:
      edge:
        port: 8443
        gateway:
          kind: ingress
          tls: {cert: certs/edge.pem, key: certs/edge-key.pem}   # the operator's certificate
          routes:
            - {name: docs, match: {path: {prefix: /docs}}, to: ingest, strip_prefix: /docs}
          cors: {allow_origins: ["https://app.example.com"]}
      outbound:
        gateway:
          kind: egress
          allow:
            - {host: api.example.com, scheme: https}
            - {host: "*.internal.example", scheme: https, client_cert: c.pem, client_key: k.pem}

An ingress gateway's end-user JWTs, authorization rules and per-client rate
limits are the mesh's own (``security.end_user``, ``security.authorization``,
``policies.blocks.<gateway>.rate_limits`` with ``per: source``): the gateway
runs the same inbound layers as every block, it adds TLS with the operator's
certificate, routing by path to blocks and patterns, and CORS.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from eblocks.spec.base import Frozen, Name
from eblocks.spec.policies import RouteMatch
from eblocks.spec.units import Duration, Timeout

__all__ = [
    "Cors",
    "EgressGateway",
    "EgressHost",
    "Gateway",
    "GatewayRoute",
    "GatewayTls",
    "IngressGateway",
]


class GatewayTls(Frozen):
    """The operator's certificate (PEM files, relative to the spec's folder)."""

    cert: str = Field(min_length=1, description="certificate chain, PEM")
    key: str = Field(min_length=1, description="its private key, PEM (unencrypted)")


class Cors(Frozen):
    """Cross-origin requests from browsers (the Fetch standard's CORS protocol)."""

    allow_origins: tuple[str, ...] = Field(
        min_length=1, description="origins allowed, e.g. https://app.example.com, or `*`"
    )
    allow_methods: tuple[str, ...] = Field(
        ("GET", "POST", "PUT", "DELETE"), description="methods a preflight may ask for"
    )
    allow_headers: tuple[str, ...] = Field(
        ("authorization", "content-type", "idempotency-key"),
        description="request headers a preflight may ask for",
    )
    expose_headers: tuple[str, ...] = Field(
        ("x-eblocks-error", "x-eblocks-origin", "x-request-id", "retry-after"),
        description="response headers scripts may read",
    )
    allow_credentials: bool = Field(False, description="cookies and Authorization allowed")
    max_age: Duration = Field(600.0, description="how long browsers cache a preflight")

    @field_validator("allow_methods")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in value)

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(h.lower() for h in value)

    @model_validator(mode="after")
    def _credentials(self) -> Cors:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("'allow_credentials' cannot be used with the origin '*'")
        return self


class GatewayRoute(Frozen):
    """Requests that match go to a block or a pattern; the first route that matches wins."""

    name: str = Field(min_length=1, description="named in metrics and errors")
    match: RouteMatch = Field(RouteMatch(), description="which requests (empty: all)")
    to: Name = Field(description="the block or pattern that handles them")
    strip_prefix: str | None = Field(
        None, description="removed from the path before it is passed on (x-eblocks-path)"
    )
    timeout: Annotated[float, Timeout("leave it out for the target's timeout")] | None = Field(
        None, description="deadline of the call into the mesh"
    )


class IngressGateway(Frozen):
    """Accepts requests from outside the mesh and calls blocks and patterns with them."""

    kind: Literal["ingress"]
    tls: GatewayTls | None = Field(
        None, description="the operator's certificate (default: the block's mesh identity)"
    )
    routes: tuple[GatewayRoute, ...] = Field(min_length=1, description="in order")
    cors: Cors | None = Field(None, description="answer browsers' cross-origin requests")

    @model_validator(mode="after")
    def _unique(self) -> IngressGateway:
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                raise ValueError(f"route name {route.name!r} is used twice")
            seen.add(route.name)
        return self


class EgressHost(Frozen):
    """An external host blocks may call through the gateway."""

    host: str = Field(min_length=1, description="host name or glob, e.g. `*.example.com`")
    ports: tuple[int, ...] = Field(
        (), description="ports allowed (default: the scheme's, 80 or 443)"
    )
    scheme: Literal["http", "https"] = Field("https", description="how the gateway connects")
    ca_file: str | None = Field(None, description="CA bundle to verify it (default: system)")
    client_cert: str | None = Field(None, description="certificate presented to it (mTLS)")
    client_key: str | None = Field(None, description="the client certificate's key")

    @model_validator(mode="after")
    def _pair(self) -> EgressHost:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("set both 'client_cert' and 'client_key', or neither")
        if self.scheme == "http" and (self.client_cert or self.ca_file):
            raise ValueError("certificates need scheme: https")
        return self

    def admits(self, host: str, port: int, scheme: str) -> bool:
        """Whether a request to ``scheme://host:port`` is allowed by this entry."""
        if scheme != self.scheme or not fnmatch.fnmatchcase(host.lower(), self.host.lower()):
            return False
        return port in (self.ports or ((443,) if scheme == "https" else (80,)))


class EgressGateway(Frozen):
    """Calls external hosts for the blocks, only those on its allow-list."""

    kind: Literal["egress"]
    allow: tuple[EgressHost, ...] = Field(min_length=1, description="external hosts allowed")
    timeout: Annotated[float, Timeout("leave it out for 30s")] = Field(
        30.0, description="deadline of one external request"
    )


Gateway = Annotated[IngressGateway | EgressGateway, Field(discriminator="kind")]
