"""What rendered instances get to verify `eblocks apply`'s bundles, and gateways' files in pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from eblocks.cli import app
from eblocks.deploy import (
    KUBERNETES_VERSION,
    KubeOptions,
    PolicyTrust,
    cluster_spec,
    render_kubernetes,
)
from eblocks.deploy.docker import DockerOptions, docker_files
from eblocks.deploy.gateway_files import operator_commands
from eblocks.deploy.names import Names
from eblocks.errors import RenderError
from eblocks.policies.keys import load_public_key, policy_folder, read_run
from eblocks.spec import MeshSpec, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]
TEXTPIPE = ROOT / "examples" / "textpipe" / "mesh.yaml"

GATEWAYS = """
apiVersion: eblocks/v1
mesh: shop
blocks:
  api: {handler: "app:handle"}
  edge:
    gateway:
      kind: ingress
      tls: {cert: certs/edge.pem, key: certs/edge-key.pem}
      routes: [{name: all, to: api}]
  outbound:
    gateway:
      kind: egress
      allow:
        - {host: api.example.com}
        - {host: "*.partner.example", ca_file: partner/ca.pem,
           client_cert: certs/us.pem, client_key: certs/us-key.pem}
        - {host: other.example, ca_file: other/ca.pem}
"""


def _gateways() -> MeshSpec:
    return parse_spec(GATEWAYS, "mesh.yaml")


def _docs(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [doc for docs in rendered.values() for doc in docs]


def _deployment(rendered: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any]:
    return next(
        d for d in _docs(rendered) if d["kind"] == "Deployment" and d["metadata"]["name"] == name
    )


def _block(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "block")


def test_the_state_dirs_key_pair_and_run_make_the_trust(tmp_path: Path) -> None:
    trust = PolicyTrust.from_state(tmp_path)
    assert (policy_folder(tmp_path) / "signing.key").stat().st_mode & 0o077 == 0
    assert trust.run == read_run(tmp_path)
    assert PolicyTrust.from_state(tmp_path) == trust  # the same key and run: deterministic
    fresh = PolicyTrust.from_state(tmp_path, fresh_run=True)
    assert fresh.public_key == trust.public_key
    assert fresh.run != trust.run
    assert fresh.digest != trust.digest
    with pytest.raises(RenderError, match="PEM"):
        PolicyTrust("not a key", "abc")


def test_pods_mount_the_public_key_and_run_read_only_and_roll_when_they_change(
    tmp_path: Path,
) -> None:
    trust = PolicyTrust.from_state(tmp_path)
    spec = load_spec(TEXTPIPE)
    rendered = render_kubernetes(spec, KubeOptions(policy=trust))
    config = next(d for d in rendered["01-mesh.yaml"] if d["metadata"]["name"] == "textpipe-policy")
    assert set(config["data"]) == {"run", "signing.pub"}
    assert "PRIVATE" not in yaml.safe_dump(_docs(rendered))  # the signing key stays home
    # what the instance reads from its --policy-dir is what the state dir holds
    folder = tmp_path / "mounted"
    folder.mkdir()
    for key, value in config["data"].items():
        (folder / key).write_text(value)
    assert read_run(tmp_path / "none", folder) == trust.run
    assert load_public_key(tmp_path / "none", folder) == load_public_key(tmp_path)
    deployment = _deployment(rendered, "textpipe-clean")
    block = _block(deployment)
    assert block["args"][-2:] == ["--policy-dir", "/var/run/eblocks/policy"]
    assert {"name": "policy", "mountPath": "/var/run/eblocks/policy", "readOnly": True} in block[
        "volumeMounts"
    ]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "policy", "configMap": {"name": "textpipe-policy"}} in volumes
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    other = render_kubernetes(
        spec, KubeOptions(policy=PolicyTrust.from_state(tmp_path, fresh_run=True))
    )
    again = _deployment(other, "textpipe-clean")["spec"]["template"]["metadata"]["annotations"]
    assert again["eblocks.io/spec-sha256"] != annotations["eblocks.io/spec-sha256"]
    for document in _docs(rendered):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_without_a_trust_nothing_about_policies_is_rendered() -> None:
    rendered = render_kubernetes(load_spec(TEXTPIPE))
    assert all(d["metadata"]["name"] != "textpipe-policy" for d in _docs(rendered))
    assert "--policy-dir" not in _block(_deployment(rendered, "textpipe-clean"))["args"]


def test_the_cli_makes_the_key_once_and_renders_the_same_run_until_asked(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["render", str(TEXTPIPE), "--state-dir", str(tmp_path / "ops")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "ops" / "textpipe" / "policy" / "signing.key").is_file()
    assert runner.invoke(app, args).output == first.output
    third = runner.invoke(app, [*args, "--new-run"])
    assert third.exit_code == 0
    assert third.output != first.output


def test_gateways_files_are_secrets_mounted_where_the_pods_spec_names_them() -> None:
    spec = _gateways()
    rendered = render_kubernetes(spec)
    for document in _docs(rendered):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    data = cluster_spec(spec, "shop-gossip.shop.svc")
    tls = data["blocks"]["edge"]["gateway"]["tls"]
    assert tls == {
        "cert": "/var/run/eblocks/gateway/tls/tls.crt",
        "key": "/var/run/eblocks/gateway/tls/tls.key",
    }
    allow = data["blocks"]["outbound"]["gateway"]["allow"]
    assert allow[1]["ca_file"] == "/var/run/eblocks/gateway/egress/ca.pem"
    assert allow[1]["client_key"] == "/var/run/eblocks/gateway/egress/us-key.pem"
    assert allow[2]["ca_file"] == "/var/run/eblocks/gateway/egress/2-ca.pem"  # two ca.pem files
    edge = _deployment(rendered, "shop-edge")
    assert {
        "name": "gateway-tls",
        "mountPath": "/var/run/eblocks/gateway/tls",
        "readOnly": True,
    } in _block(edge)["volumeMounts"]
    assert {
        "name": "gateway-tls",
        "secret": {"secretName": "shop-edge-tls", "defaultMode": 0o440},
    } in edge["spec"]["template"]["spec"]["volumes"]
    api = _deployment(rendered, "shop-api")
    assert all(m["name"] != "gateway-tls" for m in _block(api)["volumeMounts"])
    assert all(d["kind"] != "Secret" for d in _docs(rendered))  # never the files themselves
    assert operator_commands(spec, Names("shop", "shop"), "site") == [
        "kubectl -n shop create secret tls shop-edge-tls "
        "--cert=site/certs/edge.pem --key=site/certs/edge-key.pem",
        "kubectl -n shop create secret generic shop-outbound-egress "
        "--from-file=2-ca.pem=site/other/ca.pem --from-file=ca.pem=site/partner/ca.pem "
        "--from-file=us-key.pem=site/certs/us-key.pem --from-file=us.pem=site/certs/us.pem",
    ]


def test_the_cli_prints_the_secret_commands_on_stderr(tmp_path: Path) -> None:
    spec = tmp_path / "site" / "mesh.yaml"
    spec.parent.mkdir()
    spec.write_text(GATEWAYS)
    result = CliRunner().invoke(app, ["render", str(spec), "--state-dir", str(tmp_path / "ops")])
    assert result.exit_code == 0, result.output
    assert "create secret tls shop-edge-tls" in result.stderr
    assert "create secret" not in result.stdout
    assert all(d is None or "kind" in d for d in yaml.safe_load_all(result.stdout))


def test_docker_binds_the_policy_folder_and_the_gateways_files_read_only(tmp_path: Path) -> None:
    site = tmp_path / "site"
    trust = PolicyTrust.from_state(tmp_path / "ops")
    files = docker_files(
        _gateways(), DockerOptions(spec_dir=site, out=tmp_path / "out", policy=trust)
    )
    assert files["policy/signing.pub"] == trust.public_key
    assert files["policy/run"] == trust.run + "\n"
    compose = yaml.safe_load(files["compose.yaml"])["services"]
    edge = compose["edge"]["volumes"]
    policy = {
        "type": "bind",
        "source": "./policy",
        "target": "/var/run/eblocks/policy",
        "read_only": True,
    }
    assert edge[0] == policy
    assert {
        "type": "bind",
        "source": "../site/certs/edge-key.pem",
        "target": "/var/run/eblocks/gateway/tls/tls.key",
        "read_only": True,
    } in edge
    assert compose["api"]["volumes"] == [policy]
    assert "--policy-dir /var/run/eblocks/policy" in files["api.Dockerfile"]
    spec = yaml.safe_load(files["mesh.yaml"])
    assert spec["blocks"]["edge"]["gateway"]["tls"]["key"] == "/var/run/eblocks/gateway/tls/tls.key"
