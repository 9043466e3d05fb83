"""The sidecar: a block whose PM forwards to a local process of any language.

``eblocks proxy --block B --app-port N [--upstream C=PORT ...] [--tcp] -- CMD``
gives a program the mesh without changing it::

    mesh caller --mTLS--> [proxy = block B: authz, metrics, traces, access log]
                              --plaintext, loopback--> app at 127.0.0.1:N
    app --plaintext, loopback--> 127.0.0.1:PORT [upstream C: MeshClient stack]
                              --mTLS--> block C

One concern per module: `options` (flags, pure), `headers` (what crosses,
pure), `http` (inbound HTTP), `websocket` (upgrades), `outbound` (upstream
ports into the client stack), `tcp` (opaque bytes, mTLS between proxies),
`process` (the app's life and port), `proxy` (assembly and start order),
`run` (the process: signals, exit codes). See docs/sidecar.md.

Only the pure names load with the package (the renderer and the supervisor
read `options`); import `eblocks.sidecar.proxy` / `.run` for the rest.
"""

from eblocks.sidecar.options import Upstream, parse_upstream

__all__ = ["Upstream", "parse_upstream"]
