"""Scalers: how a manager changes the size of its worker pool.

- `LocalProcessScaler`: the pool runs under the local supervisor. The manager
  instance writes the sizes it asks for to ``<state>/scale/<instance>.json``
  (one small file per manager instance, replaced atomically); the supervisor
  reads it, clamps it to the spec's bounds, starts workers or drains and
  retires them, and publishes what it runs in ``<state>/pools.json``
  (docs/decisions.md: "the scale channel is a file per manager").
- `KubernetesScaler`: the pool is a Deployment; the manager patches its
  ``scale`` subresource through the API server with the pod's service account.

`make_scaler` picks one for an instance: ``EBLOCKS_SCALER`` (``local`` or
``kubernetes``) when set — the local supervisor sets ``local`` for its
instances — otherwise Kubernetes inside a pod with a service account token,
else the local supervisor.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from eblocks._types import Scaler
from eblocks.errors import ScalerError, SupervisorError
from eblocks.runtime.state import StateDir, read_json, write_json

__all__ = [
    "SERVICE_ACCOUNT",
    "KubeConfig",
    "KubeRequest",
    "KubernetesScaler",
    "LocalProcessScaler",
    "make_scaler",
    "scale_request",
]

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where Kubernetes mounts a pod's service account token, CA and namespace."""


class LocalProcessScaler:
    """Ask the local supervisor for pool sizes through ``<state>/scale/<instance>.json``."""

    def __init__(self, state: StateDir, instance: str) -> None:
        self._state = state
        self._instance = instance
        self._asks: dict[str, int] = {}

    async def scale(self, pool: str, n: int) -> None:
        if n < 0:
            raise ScalerError(f"pool {pool!r}: cannot ask for {n} instances")
        self._asks[pool] = n
        path = self._state.scale_request(self._instance)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {"instance": self._instance, "pools": dict(self._asks)})
        except OSError as exc:
            raise ScalerError(f"pool {pool!r}: cannot write {path}: {exc}") from exc

    async def current(self, pool: str) -> int | None:
        try:
            data = read_json(self._state.pools) or {}
        except SupervisorError:
            return None  # half-written by an old writer: ask again next tick
        row = (data.get("pools") or {}).get(pool)
        return int(row["target"]) if isinstance(row, dict) and "target" in row else None


# -- Kubernetes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KubeConfig:
    """How to reach the API server from inside a pod."""

    server: str  # https://host:port
    namespace: str
    token_file: Path
    ca_file: Path

    @classmethod
    def in_cluster(
        cls, env: Mapping[str, str] | None = None, account: Path = SERVICE_ACCOUNT
    ) -> KubeConfig:
        """The pod's own API server address, namespace, token and CA."""
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ScalerError(
                "not inside a Kubernetes pod: KUBERNETES_SERVICE_HOST/PORT are not set"
            )
        token, ca, ns = account / "token", account / "ca.crt", account / "namespace"
        for path in (token, ca):
            if not path.is_file():
                raise ScalerError(f"no service account {path.name} at {path} (automount off?)")
        namespace = ns.read_text().strip() if ns.is_file() else env.get("POD_NAMESPACE", "")
        if not namespace:
            raise ScalerError(f"no namespace: neither {ns} nor $POD_NAMESPACE is set")
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return cls(server, namespace, token, ca)


@dataclass(frozen=True, slots=True)
class KubeRequest:
    """One API request, built by a pure function so it can be checked without a cluster."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None


def scale_request(config: KubeConfig, deployment: str, token: str, n: int | None) -> KubeRequest:
    """GET (``n`` None) or merge-PATCH ``spec.replicas`` of ``deployment``'s scale subresource."""
    url = (
        f"{config.server}/apis/apps/v1/namespaces/{config.namespace}/deployments/{deployment}/scale"
    )
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
    if n is None:
        return KubeRequest("GET", url, headers)
    if n < 0:
        raise ScalerError(f"deployment {deployment!r}: cannot ask for {n} replicas")
    headers["content-type"] = "application/merge-patch+json"
    return KubeRequest("PATCH", url, headers, orjson.dumps({"spec": {"replicas": n}}))


class KubernetesScaler:
    """Resize a pool's Deployment through the ``scale`` subresource (RBAC: patch deployments/scale).

    ``deployment`` maps a pool (the worker block) to its Deployment's name;
    ``{pool}`` is replaced by the block's name. The token is read for every
    request, because the kubelet rotates projected tokens in place.
    """

    def __init__(
        self,
        config: KubeConfig,
        *,
        deployment: str = "{pool}",
        timeout: float = 5.0,
    ) -> None:
        self._config = config
        self._template = deployment
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def deployment(self, pool: str) -> str:
        return self._template.format(pool=pool)

    async def scale(self, pool: str, n: int) -> None:
        await self._send(pool, n)

    async def current(self, pool: str) -> int | None:
        body = await self._send(pool, None)
        replicas = (body.get("spec") or {}).get("replicas")
        return int(replicas) if isinstance(replicas, int) else None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> KubernetesScaler:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, pool: str, n: int | None) -> dict[str, Any]:
        name = self.deployment(pool)
        try:
            token = self._config.token_file.read_text().strip()
        except OSError as exc:
            raise ScalerError(f"cannot read the service account token: {exc}") from exc
        req = scale_request(self._config, name, token, n)
        try:
            session = self._open()
            async with session.request(
                req.method, req.url, headers=dict(req.headers), data=req.body
            ) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise ScalerError(
                        f"{req.method} deployment {name!r} scale: API server answered "
                        f"{resp.status}: {data[:300].decode(errors='replace')}"
                    )
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise ScalerError(f"{req.method} deployment {name!r} scale: {exc}") from exc
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ScalerError(f"deployment {name!r} scale: answer is not JSON") from exc
        return body if isinstance(body, dict) else {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = ssl.create_default_context(cafile=str(self._config.ca_file))
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context), timeout=self._timeout
            )
        return self._session


def make_scaler(
    state: StateDir,
    instance: str,
    mesh: str,
    env: Mapping[str, str] | None = None,
    account: Path = SERVICE_ACCOUNT,
) -> Scaler:
    """The scaler of an instance (see the module docstring for the choice).

    On Kubernetes the worker Deployment is ``<mesh>-<block>``, the name
    `eblocks render` gives it (`eblocks.deploy.deployment_name`);
    ``EBLOCKS_SCALE_DEPLOYMENT`` (e.g. ``myapp-{pool}``) overrides it.
    """
    env = os.environ if env is None else env
    in_pod = bool(env.get("KUBERNETES_SERVICE_HOST")) and (account / "token").is_file()
    kind = env.get("EBLOCKS_SCALER") or ("kubernetes" if in_pod else "local")
    if kind == "kubernetes":
        template = env.get("EBLOCKS_SCALE_DEPLOYMENT", f"{mesh}-{{pool}}")
        return KubernetesScaler(KubeConfig.in_cluster(env, account), deployment=template)
    if kind != "local":
        raise ScalerError(f"EBLOCKS_SCALER must be 'local' or 'kubernetes', got {kind!r}")
    return LocalProcessScaler(state, instance)
