"""Which method and path a request to a block is for, by how the block takes requests.

A block's inbound policies (authorization, rate limits, bulkheads, faults)
match the request a call is *for*, which is not always the HTTP request that
reached the block's port:

- ``messages`` (a handler block, an egress gateway): every call is ``POST /``;
  the path the caller means is ``x-eblocks-path`` (`call_path`);
- ``app`` (an ``app:`` block, an ingress gateway): the real method, path and
  query;
- ``sidecar`` (an ``external:`` HTTP program behind the proxy): what the
  program is asked for — a mesh call's ``x-eblocks-method`` and
  ``x-eblocks-path`` (`request_target`), any other request as it came.

`eblocks.security` decides with `request_line`, on the path as a server
reads it (`normal_path`: percent-escapes decoded, ``.`` and ``..`` segments
resolved, as Istio normalizes paths before authorization), so ``/a/../admin``
is ``/admin`` to a rule on ``/admin/*``. The admission middleware of
an application block (`eblocks.block.stack.app_admission`) matches on
`request_view`. An application says how it reads its requests under
`SERVED_KEY` (the sidecar's forwarder says ``sidecar``); the default is ``app``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from aiohttp import web
from yarl import URL

from eblocks.message import METHOD_HEADER, PATH_HEADER
from eblocks.policies.match import RequestView, call_path

__all__ = [
    "EDGE_KEY",
    "SERVED_KEY",
    "Served",
    "normal_path",
    "request_line",
    "request_target",
    "request_view",
]

_SLASHES = re.compile(r"/{2,}")

Served = Literal["messages", "app", "sidecar"]
"""How a block's port takes requests, which says where a request's method and path are."""

SERVED_KEY: web.AppKey[Served] = web.AppKey("eblocks.served")
"""How an application block's app reads its requests (a `Served`; absent: ``app``)."""

EDGE_KEY: web.AppKey[bool] = web.AppKey("eblocks.edge")
"""An app that faces the outside (an ingress gateway): a request without a verified
identity is keyed by its address, never by the ``x-eblocks-source`` it claims."""


def request_target(method: str, path_qs: str, headers: Mapping[str, str]) -> tuple[str, str]:
    """The method and path (with its query) a program behind the sidecar is asked for.

    A call between blocks is ``POST /`` carrying the caller's path in
    ``x-eblocks-path`` and, through a sidecar, its method in ``x-eblocks-method``;
    any other request is forwarded as it came.
    """
    path = headers.get(PATH_HEADER)
    if method != "POST" or path_qs != "/" or not path:
        return method, path_qs
    wanted = headers.get(METHOD_HEADER, "POST").upper()
    if not wanted.isalpha():
        wanted = "POST"
    return wanted, path if path.startswith("/") else f"/{path}"


def normal_path(raw: str) -> str:
    """``raw`` (a path, without its query) as a server reads it: one canonical form.

    Absolute (``admin/x`` is ``/admin/x``), runs of slashes merged (``//admin``
    is ``/admin``, as nginx and Python's http.server read it; Istio's
    ``MERGE_SLASHES``), percent-escapes decoded and ``.``/``..`` segments
    removed (RFC 3986 §5.2.4, yarl's reading of a URL), slashes merged again
    (a decoded ``%2F``). A path with none of these is returned as it is,
    without parsing (most requests).
    """
    path = raw if raw.startswith("/") else f"/{raw}"
    if "%" not in path and "/." not in path and "//" not in path:
        return path
    path = URL("http://app" + _SLASHES.sub("/", path)).path or "/"
    return _SLASHES.sub("/", path)


def request_line(served: Served, request: web.Request) -> tuple[str, str]:
    """The method and path ``request`` is for, as authorization matches them (`normal_path`).

    ``messages``: the HTTP method and ``x-eblocks-path`` without its query,
    else ``/`` (`call_path`). ``app``: the real method and path. ``sidecar``:
    the method and path the program is asked for (`request_target`).
    """
    if served == "app":
        return request.method, normal_path(request.rel_url.raw_path)
    if served == "sidecar":
        method, target = request_target(request.method, request.raw_path, request.headers)
        return method, normal_path(target.partition("?")[0])
    return request.method, normal_path(call_path(request.headers))


def request_view(served: Served, request: web.Request) -> RequestView:
    """What an application block's inbound policies match ``request`` on (``app``, ``sidecar``).

    ``headers`` answer lower-case names (aiohttp's are case-insensitive).
    """
    if served == "sidecar":
        path_qs = request.raw_path  # as received: path_qs reads "//a" as "////a"
        method, target = request_target(request.method, path_qs, request.headers)
        if target is not path_qs:  # a mesh call: the program's request
            url = URL("http://app" + target)
            return RequestView(method, url.path or "/", url.query, request.headers)
    return RequestView(request.method, request.path, request.query, request.headers)
