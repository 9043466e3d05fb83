"""External blocks in Kubernetes: the program's container with the proxy as a native sidecar."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from eblocks.deploy import KUBERNETES_VERSION, KubeOptions, kubernetes_files, render_kubernetes
from eblocks.deploy.names import POLICY_DIR
from eblocks.deploy.policy import PolicyTrust
from eblocks.spec import MeshSpec, parse_spec

SPEC = """apiVersion: eblocks/v1
mesh: shop
blocks:
  web:
    external:
      command: [/srv/web, --listen, "127.0.0.1:8080"]
      port: 8080
      upstreams: {store: 9001, db: 9002}
    env: {MODE: prod}
  db:
    external: {command: [postgres, -p, "5432"], port: 5432, protocol: tcp, ready_timeout: 60s}
  store: {handler: "handlers:store"}
"""


def _spec() -> MeshSpec:
    return parse_spec(SPEC)


def _pod(rendered: dict[str, list[dict[str, Any]]], block: str) -> dict[str, Any]:
    (deployment,) = [d for d in rendered[f"10-block-{block}.yaml"] if d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("options", [KubeOptions(), KubeOptions(identity=False, tag="v2")])
def test_every_manifest_passes_the_official_schema(options: KubeOptions) -> None:
    for documents in render_kubernetes(_spec(), options).values():
        for document in documents:
            assert kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_an_external_pod_is_its_program_with_the_proxy_as_a_native_sidecar() -> None:
    pod = _pod(render_kubernetes(_spec(), KubeOptions(image_prefix="reg/", tag="v1")), "web")
    (app,) = pod["containers"]
    join, renew, proxy = pod["initContainers"]
    assert (join["name"], renew["name"]) == ("join", "renew")
    assert app["name"] == "app"
    assert app["image"] == "reg/shop-web:v1"
    assert app["command"] == ["/srv/web", "--listen", "127.0.0.1:8080"]
    assert app["env"] == [
        {"name": "EBLOCKS_APP_PORT", "value": "8080"},
        {"name": "EBLOCKS_UPSTREAM_DB", "value": "127.0.0.1:9002"},
        {"name": "EBLOCKS_UPSTREAM_STORE", "value": "127.0.0.1:9001"},
        {"name": "MODE", "value": "prod"},
    ]
    assert "ports" not in app  # only the proxy is reachable from outside the pod
    assert proxy["restartPolicy"] == "Always"
    assert proxy["image"] == join["image"] == "reg/eblocks:v1"
    assert proxy["command"] == ["python", "-m", "eblocks"]
    args = proxy["args"]
    assert args[:1] == ["proxy"]
    assert " ".join(args).endswith(
        "--app-port 8080 --admin-host * --upstream db=9002/tcp --upstream store=9001"
    )  # the admin port on every pod address: kubectl port-forward reaches it
    assert {p["name"] for p in proxy["ports"]} == {"http", "admin", "gossip"}
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert proxy["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"  # the proxy holds the SVID
    assert "startupProbe" not in proxy  # the app starts only once a sidecar has started
    assert proxy["livenessProbe"]["initialDelaySeconds"] == 30


def test_the_proxy_reads_the_policy_trust_as_every_instance_does() -> None:
    """With a policy trust rendered, `eblocks apply` reaches an external block's proxy too."""
    key = "-----BEGIN PUBLIC KEY-----\nkey\n-----END PUBLIC KEY-----\n"
    trust = PolicyTrust(key, "0123456789abcdef")
    pod = _pod(render_kubernetes(_spec(), KubeOptions(identity=False, policy=trust)), "web")
    (proxy,) = pod["initContainers"]
    args = proxy["args"]
    assert args[args.index("--policy-dir") + 1] == POLICY_DIR
    mounts = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
    assert mounts[POLICY_DIR] == "policy"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "shop-policy"
    (app,) = pod["containers"]
    assert "volumeMounts" not in app or all(m["name"] != "policy" for m in app["volumeMounts"])
    without = _pod(render_kubernetes(_spec(), KubeOptions(identity=False)), "web")
    assert "--policy-dir" not in without["initContainers"][0]["args"]


def test_tcp_mode_and_the_ready_timeout_reach_the_proxy() -> None:
    pod = _pod(render_kubernetes(_spec(), KubeOptions(identity=False)), "db")
    (proxy,) = pod["initContainers"]
    assert proxy["args"][-3:] == ["--tcp", "--ready-timeout", "60"]
    assert proxy["livenessProbe"]["initialDelaySeconds"] == 60


def test_python_blocks_are_unchanged_and_the_ca_runs_a_python_blocks_image() -> None:
    rendered = render_kubernetes(_spec())
    pod = _pod(rendered, "store")
    assert [c["name"] for c in pod["containers"]] == ["block"]
    assert "proxy" not in [c["name"] for c in pod.get("initContainers", [])]
    (ca,) = [d for d in rendered["02-identity.yaml"] if d["kind"] == "Deployment"]
    images = {c["image"] for c in ca["spec"]["template"]["spec"]["containers"]}
    assert images == {"shop-store:latest"}


def test_a_mesh_of_external_blocks_only_runs_its_ca_on_the_proxy_image() -> None:
    only = parse_spec(SPEC.split("  store:")[0].replace("{store: 9001, db: 9002}", "{db: 9002}"))
    rendered = render_kubernetes(only, KubeOptions(proxy_image="mirror/eblocks:9"))
    (ca,) = [d for d in rendered["02-identity.yaml"] if d["kind"] == "Deployment"]
    assert {c["image"] for c in ca["spec"]["template"]["spec"]["containers"]} == {
        "mirror/eblocks:9"
    }


def test_rendering_is_deterministic() -> None:
    assert kubernetes_files(_spec()) == kubernetes_files(_spec())
