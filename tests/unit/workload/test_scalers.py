"""Scalers: the local request file, and the Kubernetes request as it is built (no cluster here)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from eblocks._types import Scaler
from eblocks.deploy import deployment_name
from eblocks.errors import ScalerError
from eblocks.runtime.scaling import (
    MAX_REQUEST_BYTES,
    PoolBounds,
    initial_count,
    parse_request,
    pool_bounds,
)
from eblocks.runtime.state import StateDir, write_json
from eblocks.spec import parse_spec
from eblocks.workload.scalers import (
    KubeConfig,
    KubernetesScaler,
    LocalProcessScaler,
    make_scaler,
    scale_request,
)


async def test_local_scaler_writes_what_the_supervisor_parses(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "mesh")
    scaler = LocalProcessScaler(state, "boss-0")
    assert isinstance(scaler, Scaler)
    await scaler.scale("w", 3)
    await scaler.scale("other", 1)
    await scaler.scale("w", 2)
    raw = state.scale_request("boss-0").read_bytes()
    assert parse_request(raw, "boss-0") == {"w": 2, "other": 1}
    with pytest.raises(ScalerError, match="cannot ask for -1"):
        await scaler.scale("w", -1)


async def test_local_scaler_reads_the_target_the_supervisor_publishes(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "mesh")
    state.create()
    scaler = LocalProcessScaler(state, "boss-0")
    assert await scaler.current("w") is None  # no pools.json yet
    write_json(state.pools, {"pools": {"w": {"target": 3, "ready": 1}}})
    assert await scaler.current("w") == 3
    assert await scaler.current("x") is None
    state.pools.write_bytes(b"{half")
    assert await scaler.current("w") is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[1]", "expected an object with 'instance'"),
        (b'{"instance": "boss-1", "pools": {}}', "expected an object with 'instance': 'boss-0'"),
        (b'{"instance": "boss-0"}', "'pools' must map"),
        (b'{"instance": "boss-0", "pools": {"w": -2}}', "pool 'w': count must be"),
        (b'{"instance": "boss-0", "pools": {"w": true}}', "pool 'w': count must be"),
        (b'{"instance": "boss-0", "pools": {"w": 1.5}}', "pool 'w': count must be"),
        (b"not json", "not JSON"),
        (b" " * (MAX_REQUEST_BYTES + 1), "larger than"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(raw: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_request(raw, "boss-0")


def _account(tmp_path: Path, namespace: str | None = "mesh-ns") -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("tok-1\n")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    if namespace is not None:
        (account / "namespace").write_text(namespace)
    return account


def test_in_cluster_config_from_the_service_account(tmp_path: Path) -> None:
    account = _account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = KubeConfig.in_cluster(env, account)
    assert config == KubeConfig(
        "https://10.96.0.1:443", "mesh-ns", account / "token", account / "ca.crt"
    )
    v6 = KubeConfig.in_cluster({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, account)
    assert v6.server == "https://[fd00::1]:443"


def test_in_cluster_config_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ScalerError, match="not inside a Kubernetes pod"):
        KubeConfig.in_cluster({}, tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(ScalerError, match="no service account token"):
        KubeConfig.in_cluster(env, tmp_path / "nothing")
    account = _account(tmp_path, namespace=None)
    with pytest.raises(ScalerError, match="no namespace"):
        KubeConfig.in_cluster(env, account)
    assert KubeConfig.in_cluster({**env, "POD_NAMESPACE": "from-env"}, account).namespace == (
        "from-env"
    )


def test_scale_patch_is_a_merge_patch_of_spec_replicas(tmp_path: Path) -> None:
    config = KubeConfig("https://10.96.0.1:443", "ns", tmp_path / "t", tmp_path / "c")
    req = scale_request(config, "textpipe-tokenize", "tok-1", 3)
    assert req.method == "PATCH"
    assert req.url == (
        "https://10.96.0.1:443/apis/apps/v1/namespaces/ns/deployments/textpipe-tokenize/scale"
    )
    assert req.headers["authorization"] == "Bearer tok-1"
    assert req.headers["content-type"] == "application/merge-patch+json"
    assert req.body is not None
    assert orjson.loads(req.body) == {"spec": {"replicas": 3}}
    read = scale_request(config, "textpipe-tokenize", "tok-1", None)
    assert (read.method, read.url, read.body) == ("GET", req.url, None)
    assert "content-type" not in read.headers
    with pytest.raises(ScalerError, match="cannot ask for -1 replicas"):
        scale_request(config, "d", "tok", -1)


async def test_make_scaler_picks_by_environment(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "mesh")
    none = tmp_path / "no-account"
    assert isinstance(make_scaler(state, "boss-0", "m", {}, none), LocalProcessScaler)
    with pytest.raises(ScalerError, match="EBLOCKS_SCALER must be"):
        make_scaler(state, "boss-0", "m", {"EBLOCKS_SCALER": "nomad"}, none)
    with pytest.raises(ScalerError, match="not inside a Kubernetes pod"):
        make_scaler(state, "boss-0", "m", {"EBLOCKS_SCALER": "kubernetes"}, none)

    account = _account(tmp_path)
    pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    found = make_scaler(state, "boss-0", "shop", pod, account)  # a rendered pod: Kubernetes
    assert isinstance(found, KubernetesScaler)
    assert found.deployment("tokenize") == deployment_name("shop", "tokenize")
    local = make_scaler(state, "boss-0", "shop", {**pod, "EBLOCKS_SCALER": "local"}, account)
    assert isinstance(local, LocalProcessScaler)  # what the supervisor sets for its instances
    await found.aclose()
    config = KubeConfig("https://10.96.0.1:443", "ns", tmp_path / "t", tmp_path / "c")
    async with KubernetesScaler(config, deployment="textpipe-{pool}") as kube:
        assert isinstance(kube, Scaler)
        assert kube.deployment("tokenize") == "textpipe-tokenize"
        with pytest.raises(ScalerError, match="cannot read the service account token"):
            await kube.scale("tokenize", 2)


_MESH = """
apiVersion: eblocks/v1
mesh: unit
blocks:
  boss: {}
  boss2: {}
  w: {handler: "tests:w", replicas: 6}
  v: {handler: "tests:v", replicas: 2}
patterns:
  a:
    manager-worker: {manager: boss, worker: w, workers: {min: 1, max: 4}}
  b:
    manager-worker: {manager: boss2, worker: w, workers: {min: 2, max: 3}}
  plain:
    manager-worker: {manager: boss, worker: v}
"""


def test_pool_bounds_merge_patterns_sharing_a_worker_block() -> None:
    spec = parse_spec(_MESH, "unit.yaml")
    assert pool_bounds(spec) == {"w": PoolBounds("w", 2, 4, frozenset({"boss", "boss2"}))}
    assert initial_count(spec, "w") == 4  # replicas 6, clamped to the largest max
    assert initial_count(spec, "v") == 2  # not autoscaled: its replicas
    assert initial_count(spec, "boss") == 1
