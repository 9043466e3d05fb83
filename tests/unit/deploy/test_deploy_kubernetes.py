"""`eblocks render --target kubernetes`: valid against the official schemas, deterministic, right.

Every manifest is validated with `kubernetes-validate` (strict: unknown fields
fail) against the schemas of `KUBERNETES_VERSION`, which the package ships, so
no network is needed (checked in a network namespace of its own).
The golden files under ``golden/`` are the rendered examples; after an
intended change, regenerate them with ``EBLOCKS_UPDATE_GOLDEN=1 pytest ...``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from eblocks.cli import app
from eblocks.deploy import (
    KUBERNETES_VERSION,
    OUTSIDE,
    KubeOptions,
    callers,
    cluster_spec,
    kubernetes_files,
    pattern_edges,
    render_kubernetes,
    write_files,
)
from eblocks.deploy.policy import PolicyTrust
from eblocks.errors import RenderError
from eblocks.spec import MeshSpec, load_spec, parse_spec
from eblocks.workload.scalers import KubeConfig, KubernetesScaler, scale_request

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = ["textpipe", "hybrid"]
SCENARIOS = sorted(p.name for p in (ROOT / "examples" / "docproc").glob("*.yaml"))
TRUST = PolicyTrust(
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
    "-----END PUBLIC KEY-----\n",
    "0123456789abcdef",
)
"""A fixed policy trust (RFC 8032's first test key), so the golden files stay put."""
OPTIONS = [
    KubeOptions(policy=TRUST),
    KubeOptions(namespace="prod", image_prefix="registry.example.com/team/", tag="v1.2.3"),
    KubeOptions(identity=False, network_policy="mesh"),
    KubeOptions(network_policy="none"),
]


def _state(tmp_path: Path) -> list[str]:
    """The CLI's state root in the test's folder: `eblocks render` makes the policy key there."""
    return ["--state-dir", str(tmp_path / "ops")]


def _spec(example: str) -> MeshSpec:
    return load_spec(ROOT / "examples" / example / "mesh.yaml")


def _all(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [doc for docs in rendered.values() for doc in docs]


def _one(rendered: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _all(rendered) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "prefixed", "mesh-wide", "no-policy"])
@pytest.mark.parametrize("example", EXAMPLES)
def test_every_manifest_passes_the_official_schema(example: str, options: KubeOptions) -> None:
    rendered = render_kubernetes(_spec(example), options)
    for document in _all(rendered):
        version = kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert version == KUBERNETES_VERSION


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_case_study_specs_render_valid(scenario: str) -> None:
    spec = load_spec(ROOT / "examples" / "docproc" / scenario)
    for document in _all(render_kubernetes(spec)):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_what_kubernetes_would() -> None:
    deployment = _one(render_kubernetes(_spec("textpipe")), "Deployment", "textpipe-clean")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"].pop("port")
    with pytest.raises(kubernetes_validate.ValidationError, match="port"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_validation_needs_no_network(tmp_path: Path) -> None:
    manifest = tmp_path / "clean.yaml"
    manifest.write_text(kubernetes_files(_spec("textpipe"))["10-block-clean.yaml"])
    script = (
        "import sys, yaml, kubernetes_validate as kv\n"
        "for doc in yaml.safe_load_all(open(sys.argv[1])):\n"
        f"    kv.validate(doc, {KUBERNETES_VERSION!r}, strict=True)\n"
        "print('validated offline')\n"
    )
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.decode().strip()}")
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", script, str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "validated offline"


@pytest.mark.parametrize("example", EXAMPLES)
def test_golden_files(example: str) -> None:
    files = kubernetes_files(_spec(example), KubeOptions(policy=TRUST))
    folder = GOLDEN / example
    if os.environ.get("EBLOCKS_UPDATE_GOLDEN"):
        shutil.rmtree(folder, ignore_errors=True)
        write_files(files, folder)
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yaml"))}
    assert sorted(on_disk) == sorted(files)
    for name, text in files.items():
        assert on_disk[name] == text, f"{example}/{name} differs from the golden file"


def test_rendering_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    spec = ROOT / "examples" / "hybrid" / "mesh.yaml"
    runner = CliRunner()
    for out in ("a", "b"):
        result = runner.invoke(
            app, ["render", str(spec), "--out", str(tmp_path / out), *_state(tmp_path)]
        )
        assert result.exit_code == 0, result.output
    first = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert first == second
    assert len(first) == 10  # namespace, mesh, identity, one file per block (7)


def test_a_namespace_given_is_used_but_never_rendered() -> None:
    default = render_kubernetes(_spec("textpipe"))
    assert (
        _one(default, "Namespace", "textpipe")["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )
    given = render_kubernetes(_spec("textpipe"), KubeOptions(namespace="shared"))
    assert "00-namespace.yaml" not in given
    assert {d["metadata"]["namespace"] for d in _all(given)} == {"shared"}


def test_the_order_of_the_spec_does_not_matter() -> None:
    original = (ROOT / "examples" / "textpipe" / "mesh.yaml").read_text()
    data = yaml.safe_load(original)
    data["blocks"] = dict(reversed(list(data["blocks"].items())))
    shuffled = parse_spec(yaml.safe_dump(data, sort_keys=False), "mesh.yaml")
    assert kubernetes_files(shuffled) == kubernetes_files(_spec("textpipe"))


def test_the_pods_spec_is_the_users_with_gossip_seeded_by_the_headless_service() -> None:
    spec = _spec("hybrid")
    rendered = render_kubernetes(spec, KubeOptions(namespace="prod"))
    text = _one(rendered, "ConfigMap", "hybrid-spec")["data"]["mesh.yaml"]
    reloaded = parse_spec(text, "configmap")
    assert reloaded.discovery.mode == "gossip"
    assert reloaded.discovery.dns == "hybrid-gossip.prod.svc"
    assert reloaded.discovery.port == reloaded.discovery.dns_port == 7946
    assert reloaded.model_copy(update={"discovery": spec.discovery}) == spec
    headless = _one(rendered, "Service", "hybrid-gossip")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert headless["ports"] == [
        {"name": "gossip", "port": 7946, "targetPort": 7946, "protocol": "UDP"}
    ]


def test_keys_and_seeds_of_the_users_spec_never_reach_the_configmap() -> None:
    spec = parse_spec(
        """
apiVersion: eblocks/v1
mesh: keyed
discovery:
  mode: gossip
  key: a-very-secret-key-of-32-bytes!!!
  seeds: ["10.0.0.2:7000"]
  port: 7000
  leave_drain: 2s
blocks:
  a: {handler: "h:a"}
""",
        "keyed.yaml",
    )
    text = _one(render_kubernetes(spec), "ConfigMap", "keyed-spec")["data"]["mesh.yaml"]
    assert "secret" not in text
    assert "10.0.0.2" not in text
    discovery = cluster_spec(spec, "keyed-gossip.keyed.svc")["discovery"]
    assert discovery == {
        "mode": "gossip",
        "dns": "keyed-gossip.keyed.svc",
        "dns_port": 7000,
        "port": 7000,
        "leave_drain": 2.0,
    }


RESOURCED = parse_spec(
    """
apiVersion: eblocks/v1
mesh: sized
defaults: {drain: 20s, ready_timeout: 60s}
discovery: {mode: gossip, leave_drain: 1500ms}
blocks:
  big:
    handler: "h:big"
    replicas: 4
    drain: 7s
    env: {MODEL: small, A_FIRST: "1"}
    resources: {requests: {cpu: 2, memory: 1Gi}, limits: {cpu: "4"}}
  small: {handler: "h:small"}
""",
    "sized.yaml",
)


def test_a_deployment_carries_the_blocks_settings() -> None:
    rendered = render_kubernetes(RESOURCED)
    deployment = _one(rendered, "Deployment", "sized-big")
    assert deployment["spec"]["replicas"] == 4
    pod = deployment["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == math.ceil(1.5 + 7) + 5
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "1Gi"},
        "limits": {"cpu": "4", "memory": "512Mi"},
    }
    assert container["startupProbe"]["failureThreshold"] * 2 >= 60
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "admin",
        "scheme": "HTTPS",  # mTLS strict: the admin port is TLS; probes show no certificate
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8080,
        "admin": 9090,
        "gossip": 7946,
    }
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    assert pod["metadata"]["annotations"]["prometheus.io/scheme"] == "https"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["EBLOCKS_BLOCK"]["value"] == "big"
    assert [e["name"] for e in container["env"]][-2:] == ["A_FIRST", "MODEL"]
    assert container["command"] == ["python", "-m", "eblocks.runtime.instance"]
    small = _one(rendered, "Deployment", "sized-small")["spec"]["template"]["spec"]
    assert small["terminationGracePeriodSeconds"] == math.ceil(1.5 + 20) + 5
    assert small["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_the_pods_roll_when_the_spec_changes() -> None:
    def digest(spec: MeshSpec) -> str:
        deployment = _one(render_kubernetes(spec), "Deployment", "sized-small")
        return str(
            deployment["spec"]["template"]["metadata"]["annotations"]["eblocks.io/spec-sha256"]
        )

    changed = RESOURCED.model_copy(update={"description": "changed"})
    assert digest(RESOURCED) != digest(changed)


def test_selectors_pick_exactly_the_blocks_pods() -> None:
    rendered = render_kubernetes(_spec("hybrid"))
    for block in _spec("hybrid").blocks:
        name = f"hybrid-{block}"
        pod_labels = _one(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        selectors = [
            _one(rendered, "Service", name)["spec"]["selector"],
            _one(rendered, "Deployment", name)["spec"]["selector"]["matchLabels"],
            _one(rendered, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"],
            _one(rendered, "NetworkPolicy", name)["spec"]["podSelector"]["matchLabels"],
        ]
        for selector in selectors:
            assert selector.items() <= pod_labels.items()
            assert selector["eblocks.io/block"] == block
        gossip = _one(rendered, "Service", "hybrid-gossip")["spec"]["selector"]
        assert gossip.items() <= pod_labels.items()
    ca_labels = _one(rendered, "Deployment", "hybrid-ca")["spec"]["template"]["metadata"]["labels"]
    assert not gossip.items() <= ca_labels.items()  # the CA is no gossip member


def test_only_managers_may_scale_and_only_their_workers() -> None:
    rendered = render_kubernetes(_spec("hybrid"))
    roles = [d for d in _all(rendered) if d["kind"] == "Role"]
    assert [r["metadata"]["name"] for r in roles] == ["hybrid-dispatcher-scaler"]
    scale = roles[0]["rules"][0]
    assert scale["resources"] == ["deployments/scale"]
    assert scale["resourceNames"] == ["hybrid-tokenize"]
    assert "patch" in scale["verbs"]
    binding = _one(rendered, "RoleBinding", "hybrid-dispatcher-scaler")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hybrid-dispatcher", "namespace": "hybrid"}
    ]
    tokens = {
        d["metadata"]["name"]: d["automountServiceAccountToken"]
        for d in _all(rendered)
        if d["kind"] == "ServiceAccount"
    }
    assert {name for name, mounted in tokens.items() if mounted} == {"hybrid-dispatcher"}


AUTOSCALED = parse_spec(
    """
apiVersion: eblocks/v1
mesh: pool
blocks:
  boss: {}
  work: {handler: "h:work", replicas: 1}
patterns:
  jobs: {manager-worker: {manager: boss, worker: work, workers: {min: 2, max: 6}}}
""",
    "pool.yaml",
)


def test_the_manager_scales_the_deployment_its_role_names(tmp_path: Path) -> None:
    rendered = render_kubernetes(AUTOSCALED)
    assert _one(rendered, "Deployment", "pool-work")["spec"]["replicas"] == 2  # within min..max
    boss = _one(rendered, "Deployment", "pool-boss")["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in boss["containers"][0]["env"] if "value" in e}
    assert boss["automountServiceAccountToken"] is True
    account = tmp_path / "serviceaccount"  # what the kubelet mounts for the manager
    account.mkdir()
    for name, text in {"token": "t", "ca.crt": "c", "namespace": "pool"}.items():
        (account / name).write_text(text)
    cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = KubeConfig.in_cluster(cluster, account)
    scaler = KubernetesScaler(config, deployment=env["EBLOCKS_SCALE_DEPLOYMENT"])
    assert env["EBLOCKS_SCALER"] == "kubernetes"
    role = _one(rendered, "Role", "pool-boss-scaler")
    assert scaler.deployment("work") in role["rules"][0]["resourceNames"]
    request = scale_request(config, scaler.deployment("work"), "t", 3)
    assert request.url.endswith("/namespaces/pool/deployments/pool-work/scale")
    assert _one(rendered, "Deployment", scaler.deployment("work"))


def _admitted(policy: dict[str, Any], port: int) -> set[str] | None:
    """Blocks whose pods may reach ``port``; None when any source may."""
    for rule in policy["spec"]["ingress"]:
        if any(p["port"] == port for p in rule["ports"]):
            if "from" not in rule:
                return None
            return {
                peer["podSelector"]["matchLabels"].get("eblocks.io/block", "*any block*")
                for peer in rule["from"]
            }
    return set()


@pytest.mark.parametrize("example", EXAMPLES)
def test_network_policies_admit_exactly_the_callers(example: str) -> None:
    spec = _spec(example)
    rendered = render_kubernetes(spec)
    allowed = callers(spec, pattern_edges(spec))
    for block, sources in allowed.items():
        policy = _one(rendered, "NetworkPolicy", f"{spec.mesh}-{block}")
        expected = None if OUTSIDE in sources else set(sources)
        assert _admitted(policy, 8080) == expected, block
        assert _admitted(policy, 7946) == {"*any block*"}
        assert _admitted(policy, 9090) is None  # probes and Prometheus


def test_internal_stages_are_closed_to_everyone_else() -> None:
    rendered = render_kubernetes(_spec("hybrid"))
    assert _admitted(_one(rendered, "NetworkPolicy", "hybrid-tokenize"), 8080) == {"dispatcher"}
    assert _admitted(_one(rendered, "NetworkPolicy", "hybrid-count"), 8080) == {"clean"}
    assert _admitted(_one(rendered, "NetworkPolicy", "hybrid-clean"), 8080) is None


def test_policy_modes() -> None:
    mesh_wide = render_kubernetes(_spec("hybrid"), KubeOptions(network_policy="mesh"))
    assert _admitted(_one(mesh_wide, "NetworkPolicy", "hybrid-tokenize"), 8080) == {"*any block*"}
    none = render_kubernetes(_spec("hybrid"), KubeOptions(network_policy="none"))
    assert not [d for d in _all(none) if d["kind"] == "NetworkPolicy"]


def test_the_root_key_is_mounted_by_the_ca_pod_only() -> None:
    rendered = render_kubernetes(_spec("hybrid"))
    secrets_by_pod: dict[str, set[str]] = {}
    for deployment in (d for d in _all(rendered) if d["kind"] == "Deployment"):
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        secrets_by_pod[deployment["metadata"]["name"]] = {
            v["secret"]["secretName"] for v in volumes if "secret" in v
        }
    holders = {pod for pod, secrets in secrets_by_pod.items() if "hybrid-ca-root" in secrets}
    assert holders == {"hybrid-ca"}


def test_each_pod_joins_with_its_own_blocks_token_only() -> None:
    rendered = render_kubernetes(_spec("hybrid"))
    for block in _spec("hybrid").blocks:
        pod = _one(rendered, "Deployment", f"hybrid-{block}")["spec"]["template"]["spec"]
        join, renew = pod["initContainers"]
        assert join["command"] == ["eblocks", "ca", "join"]
        refs = [
            e["valueFrom"]["secretKeyRef"]
            for e in join["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        ]
        assert refs == [{"name": "hybrid-join-tokens", "key": block}]
        assert (
            join["args"][-1] == "/var/lib/eblocks/identity/$(POD_NAME)"
        )  # where the instance looks
        assert renew["restartPolicy"] == "Always"  # a native sidecar
        assert "--renew" in renew["command"][-1]
        assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in renew["env"])


def test_identity_is_left_out_when_asked_or_when_no_block_speaks_tls() -> None:
    off = kubernetes_files(_spec("hybrid"), KubeOptions(identity=False))
    assert "02-identity.yaml" not in off
    assert "initContainers" not in off["10-block-clean.yaml"]
    plain = _spec("textpipe").model_copy(
        update={"security": _spec("textpipe").security.model_copy(update={"mtls": "disable"})}
    )
    assert "02-identity.yaml" not in kubernetes_files(plain)


def test_admin_probes_and_scrapes_follow_each_blocks_mtls_mode() -> None:
    spec = parse_spec(
        """
apiVersion: eblocks/v1
mesh: modes
blocks:
  tight: {handler: "h:f"}
  open: {handler: "h:f", security: {mtls: permissive}}
  legacy: {handler: "h:f", security: {mtls: disable}}
""",
        "modes.yaml",
    )
    rendered = render_kubernetes(spec)
    for block, scheme in (("tight", "HTTPS"), ("open", "HTTPS"), ("legacy", "HTTP")):
        pod = _one(rendered, "Deployment", f"modes-{block}")["spec"]["template"]
        container = pod["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["scheme"] == scheme, (block, probe)
        assert pod["metadata"]["annotations"]["prometheus.io/scheme"] == scheme.lower()
    plain = spec.model_copy(
        update={"security": spec.security.model_copy(update={"mtls": "disable"})}
    )
    pod = _one(render_kubernetes(plain), "Deployment", "modes-tight")["spec"]["template"]
    assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ("  gossip: {handler: 'h:f'}\n", "reserved"),
        (f"  b{'x' * 62}: {{handler: 'h:f'}}\n", "no DNS label"),
        ("  trailing-: {handler: 'h:f'}\n", "no DNS label"),
    ],
)
def test_names_kubernetes_cannot_take_are_refused(blocks: str, message: str) -> None:
    spec = parse_spec(f"apiVersion: eblocks/v1\nmesh: m\nblocks:\n{blocks}", "m.yaml")
    with pytest.raises(RenderError, match=message):
        render_kubernetes(spec)


def test_stale_generated_files_go_and_the_users_stay(tmp_path: Path) -> None:
    write_files(kubernetes_files(_spec("hybrid")), tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    hybrid = _spec("hybrid")
    fewer = hybrid.model_copy(
        update={
            "blocks": {
                k: v for k, v in hybrid.blocks.items() if k not in {"chunks", "merge", "stats"}
            },
            "patterns": {k: v for k, v in hybrid.patterns.items() if k != "lines"},
        }
    )
    write_files(kubernetes_files(fewer), tmp_path)
    assert not (tmp_path / "10-block-chunks.yaml").exists()
    assert (tmp_path / "10-block-clean.yaml").exists()
    assert (tmp_path / "kustomization.yaml").read_text() == "resources: []\n"


def test_the_cli_prints_one_stream_without_out(tmp_path: Path) -> None:
    spec = str(ROOT / "examples" / "textpipe" / "mesh.yaml")
    result = CliRunner().invoke(app, ["render", spec, *_state(tmp_path)])
    assert result.exit_code == 0, result.output
    documents = [d for d in yaml.safe_load_all(result.output) if d is not None]
    # and the policy ConfigMap, made from the state dir's key
    assert len(documents) == len(_all(render_kubernetes(_spec("textpipe")))) + 1


def test_the_cli_names_a_bad_namespace(tmp_path: Path) -> None:
    spec = str(ROOT / "examples" / "textpipe" / "mesh.yaml")
    result = CliRunner().invoke(app, ["render", spec, "--namespace", "Not_OK", *_state(tmp_path)])
    assert result.exit_code == 1
    assert "namespace 'Not_OK'" in result.output
