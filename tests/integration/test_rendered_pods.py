"""The rendered Deployments run for real: each "pod" is its containers' own command lines.

No cluster here, so the test plays the kubelet for the textpipe example (mTLS
strict, the default). The operator's part is done with the real CLI
(`eblocks ca init`, `eblocks ca token` per block) and its results become the
Secrets the docs say to create. For the CA pod and every replica of every
block Deployment, `Kubelet` materialises the pod's volumes (ConfigMap and
Secret files, emptyDirs, subPath files), resolves the env (downward API,
``secretKeyRef``, ``$(VAR)``), maps each mount path to its folder and runs the
init containers to completion, then the containers. The pods live in one
network namespace the test makes, each on its own address in 198.18.0.0/15;
the Services' names resolve through the namespace's ``/etc/hosts`` (``ip
netns exec`` mounts ``/etc/netns/<ns>/hosts``), as the cluster DNS would:
the gossip name to every block pod, the CA's to the CA pod. Then:

- every block pod's ``join`` init container gets its SVID from the CA pod;
- the rendered probes (``GET <admin port><path>`` on the pod IP) answer 200;
- the pods find each other through the gossip seeded by the headless name;
- the pipeline, called over mTLS at its first stage, answers through every stage;
- SIGTERM stops every block pod cleanly within its terminationGracePeriodSeconds;
- `eblocks apply --admin-url` from the operator's state dir (which holds the
  policy signing key `eblocks render` used) puts new policies in force in every
  pod; a pod started afresh resumes the newest version from its peers and takes
  the next one; a bundle signed with another key is refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from eblocks.deploy import KubeOptions, Names, PolicyTrust, render_kubernetes
from eblocks.deploy.gateway_files import operator_commands
from eblocks.policies.keys import ensure_signing_key
from eblocks.security.local import LocalIssuer
from eblocks.spec import load_spec

from .helpers import REPO, TEXTPIPE, wait_for

pytestmark = pytest.mark.integration

BOUND = 30.0  # generous bound of every wait; nothing here is about speed
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`"
    return None


@dataclass
class Pod:
    name: str
    block: str
    ip: str
    grace: int
    admin_port: int
    probes: Mapping[str, str]
    scheme: str  # the rendered probes' (HTTPS: the admin port is TLS)
    procs: list[subprocess.Popen[bytes]]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion; an unknown variable stays as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


class Kubelet:
    """Just enough of a kubelet to run the rendered pod templates as local processes."""

    def __init__(
        self, root: Path, configmaps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]]
    ) -> None:
        self.root, self.configmaps, self.secrets = root, configmaps, secrets
        self.config_folders: set[Path] = set()

    def volumes(self, pod: str, spec: dict[str, Any]) -> dict[str, Path]:
        """Each volume of the pod as a folder (emptyDirs shared by its containers)."""
        found: dict[str, Path] = {}
        for volume in spec["volumes"]:
            folder = self.root / pod / "volumes" / volume["name"]
            folder.mkdir(parents=True)
            if "configMap" in volume:
                self._files(
                    folder, self.configmaps[volume["configMap"]["name"]], volume["configMap"]
                )
                self.config_folders.add(folder)
            elif "secret" in volume:
                source = volume["secret"]
                self._files(folder, self.secrets[source["secretName"]], source)
            found[volume["name"]] = folder
        return found

    @staticmethod
    def _files(folder: Path, data: Mapping[str, str], source: Mapping[str, Any]) -> None:
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            (folder / item["path"]).write_text(data[item["key"]])

    def env(self, container: dict[str, Any], downward: Mapping[str, str]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
            elif "fieldRef" in item["valueFrom"]:
                env[item["name"]] = downward[item["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                value = self.secrets.get(ref["name"], {}).get(ref["key"])
                assert value is not None or ref.get("optional"), f"missing secret {ref}"
                if value is not None:
                    env[item["name"]] = value
        return env

    def argv(
        self, container: dict[str, Any], env: Mapping[str, str], volumes: Mapping[str, Path]
    ) -> list[str]:
        """The command line, with each mount path replaced by the folder behind it."""
        mounts: dict[str, Path] = {}
        for mount in sorted(container["volumeMounts"], key=lambda m: len(m["mountPath"])):
            path, folder = mount["mountPath"], volumes[mount["name"]]
            if "subPath" in mount:
                parent = next(p for p in mounts if path.startswith(p + "/"))
                target = mounts[parent] / path[len(parent) + 1 :]
                shutil.copyfile(folder / mount["subPath"], target)
                continue
            mounts[path] = folder
        words = [expand(word, env) for word in container["command"] + container.get("args", [])]
        # One pass, whole path components only: a host folder may contain a mount path.
        paths = "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w./-])({paths})(?![\w.-])")
        words = [pattern.sub(lambda m: str(mounts[m.group(1)]), word) for word in words]
        # No mount namespace here: a path the mounted spec names (a gateway's Secret) is
        # mapped the same way, so the instance opens the folder behind it.
        for folder in set(mounts.values()) & self.config_folders:
            for file in folder.iterdir():
                text = file.read_text()
                file.write_text(pattern.sub(lambda m: str(mounts[m.group(1)]), text))
        head = {"python": [sys.executable], "eblocks": [sys.executable, "-m", "eblocks"]}
        return head.get(words[0], words[:1]) + words[1:]


class Netns:
    """A network namespace whose loopback holds the pods' addresses."""

    def __init__(self, hosts: Mapping[str, list[str]]) -> None:
        self.name = f"ebk-pods-{os.getpid()}-{secrets.token_hex(3)}"
        self.etc = Path("/etc/netns") / self.name
        self.hosts = hosts

    def __enter__(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True, timeout=10)
        try:
            self.ip("link", "set", "lo", "up")
            lines = ["127.0.0.1 localhost"]
            for name, addresses in self.hosts.items():
                for address in addresses:
                    self.ip("addr", "add", f"{address}/32", "dev", "lo")
                    lines.append(f"{address} {name}")
            self.etc.mkdir(parents=True)
            (self.etc / "hosts").write_text("\n".join(lines) + "\n")
            (self.etc / "host.conf").write_text("multi on\n")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.etc, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", self.name], check=False, timeout=10)

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.name, *args], check=True, timeout=10)

    def exec(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def get(self, url: str, identity: Path | None = None) -> tuple[int, bytes]:
        """GET ``url`` inside the namespace: as kubelet (https unverified, no certificate),
        or with the SVID in the folder ``identity`` (verified against its bundle)."""
        script = (
            "import ssl, sys, urllib.request, urllib.error\n"
            "ctx = ssl._create_unverified_context()\n"
            "if len(sys.argv) > 2:\n"
            "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
            "    ctx.check_hostname = False\n"
            "    ctx.load_cert_chain(sys.argv[2] + '/svid.pem', sys.argv[2] + '/svid.key')\n"
            "    ctx.load_verify_locations(sys.argv[2] + '/bundle.pem')\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=2, context=ctx)\n"
            "    code, body = r.status, r.read()\n"
            "except urllib.error.HTTPError as e:\n"
            "    code, body = e.code, e.read()\n"
            "except OSError:\n"
            "    code, body = 0, b''\n"
            "sys.stdout.buffer.write(str(code).encode() + b'\\n' + body)\n"
        )
        done = subprocess.run(
            self.exec(sys.executable, "-c", script, url, *([str(identity)] if identity else [])),
            capture_output=True,
            timeout=BOUND,
        )
        head, _, body = done.stdout.partition(b"\n")
        return int(head or 0), body


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "eblocks", *args], capture_output=True, text=True, timeout=BOUND
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _operator(spec_file: Path, blocks: Mapping[str, int], root: Path) -> dict[str, dict[str, str]]:
    """What docs/kubernetes.md has the operator do, as the Secrets it creates."""
    state = root / "operator"
    _cli("ca", "init", str(spec_file), "--state-dir", str(state))
    tokens = {
        block: _cli(
            "ca",
            "token",
            str(spec_file),
            "--block",
            block,
            "--uses",
            str(n + 1),
            "--state-dir",
            str(state),
        )
        for block, n in blocks.items()
    }
    ca = {p.name: p.read_text() for p in (state / "textpipe" / "ca").iterdir() if p.is_file()}
    return {
        "textpipe-ca-root": ca,
        "textpipe-join-tokens": tokens,
        "textpipe-gossip-key": {"gossip.key": secrets.token_hex(32)},
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Netns, list[Pod], dict[str, dict[str, str]], str]]:
    reason = _usable()
    if reason:
        pytest.skip(reason)
    # what `eblocks render --state-dir operator` does: the policy key pair and run id there
    trust = PolicyTrust.from_state(tmp_path / "operator" / "textpipe")
    rendered = render_kubernetes(load_spec(TEXTPIPE / "mesh.yaml"), KubeOptions(policy=trust))
    documents = [doc for docs in rendered.values() for doc in docs]
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    spec_file = tmp_path / "mesh.yaml"  # the spec the pods run, for the operator's CLI
    spec_file.write_text(config["data"]["mesh.yaml"])
    deployments = sorted(
        (d for d in documents if d["kind"] == "Deployment"), key=lambda d: d["metadata"]["name"]
    )
    replicas = {
        d["metadata"]["labels"]["eblocks.io/block"]: d["spec"]["replicas"]
        for d in deployments
        if "eblocks.io/block" in d["metadata"]["labels"]
    }
    uses = {**replicas, "clean": replicas["clean"] + 1, "count": replicas["count"] + 1}
    cluster_secrets = _operator(spec_file, uses, tmp_path)
    configmaps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    kubelet = Kubelet(tmp_path / "pods", configmaps, cluster_secrets)
    pods: list[tuple[str, dict[str, Any], str]] = []
    for deployment in deployments:
        for replica in range(deployment["spec"]["replicas"]):
            ip = f"198.18.0.{len(pods) + 1}"
            pods.append((f"{deployment['metadata']['name']}-{replica}", deployment, ip))
    ca_ip = next(ip for name, _, ip in pods if name == "textpipe-ca-0")
    gossip = [ip for name, _, ip in pods if name != "textpipe-ca-0"]
    hosts = {"textpipe-gossip.textpipe.svc": gossip, "textpipe-ca.textpipe.svc": [ca_ip]}
    started: list[Pod] = []
    with Netns(hosts) as netns:
        try:
            # The CA first, as its readiness gates every join.
            for name, deployment, ip in sorted(pods, key=lambda p: p[0] != "textpipe-ca-0"):
                started.append(_start(kubelet, netns, name, deployment, ip, tmp_path))
                if name == "textpipe-ca-0":
                    _wait(lambda: _tcp_open(netns, ca_ip, 8443), "the CA pod to listen", tmp_path)
            yield netns, started, cluster_secrets, ca_ip
            # a pod a test started later (same kubelet, same namespace) is in `started` too
        finally:
            _kill(started)


def _kill(pods: list[Pod]) -> None:
    """SIGKILL what still runs of ``pods`` (each container its own process group)."""
    for pod in pods:
        for proc in pod.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=BOUND)


def _tcp_open(netns: Netns, ip: str, port: int) -> bool:
    script = f"import socket; socket.create_connection(({ip!r}, {port}), timeout=1).close()"
    done = subprocess.run(
        netns.exec(sys.executable, "-c", script), capture_output=True, timeout=BOUND
    )
    return done.returncode == 0


def _start(
    kubelet: Kubelet, netns: Netns, name: str, deployment: dict[str, Any], ip: str, logs: Path
) -> Pod:
    """Run one pod: init containers to completion (sidecars keep running), then its containers."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = kubelet.volumes(name, spec)
    downward = {
        "metadata.name": name,
        "metadata.namespace": deployment["metadata"]["namespace"],
        "status.podIP": ip,
        "spec.nodeName": "node-0",
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = Pod(
        name,
        labels.get("eblocks.io/block", "ca"),
        ip,
        spec.get("terminationGracePeriodSeconds", 30),
        0,
        {},
        "http",
        [],
    )
    # the image's /app, then the runner's PYTHONPATH (the eblocks under test, if set there)
    path = os.pathsep.join(p for p in (str(TEXTPIPE), os.environ.get("PYTHONPATH", "")) if p)
    image_env = {**os.environ, "PYTHONPATH": path}
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        env = kubelet.env(container, downward)
        argv = kubelet.argv(container, env, volumes)
        if "--admin-host" in argv:  # every address of the pod: here all pods share one netns
            argv[argv.index("--admin-host") + 1] = ip
        log = (logs / f"{name}.{container['name']}.log").open("wb")
        proc = subprocess.Popen(
            netns.exec(*argv),
            env={**image_env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        pod.procs.append(proc)
        if (
            container in spec.get("initContainers", [])
            and container.get("restartPolicy") != "Always"
        ):
            code = proc.wait(timeout=BOUND)
            assert code == 0, (
                f"{name}: init container {container['name']} exited {code}:\n{_logs(logs)}"
            )
    main = spec["containers"][0]
    if "httpGet" in main.get("readinessProbe", {}):
        pod.admin_port = next(p["containerPort"] for p in main["ports"] if p["name"] == "admin")
        pod.probes = {
            k: main[f"{k}Probe"]["httpGet"]["path"] for k in ("startup", "liveness", "readiness")
        }
        pod.scheme = main["readinessProbe"]["httpGet"]["scheme"].lower()
    return pod


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*.log"))


def _wait(predicate: Callable[[], bool], what: str, tmp_path: Path) -> None:
    try:
        wait_for(predicate, timeout=BOUND, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(tmp_path)}") from None


def test_rendered_pods_join_probe_gossip_serve_and_drain(
    cluster: tuple[Netns, list[Pod], dict[str, dict[str, str]], str], tmp_path: Path
) -> None:
    netns, started, cluster_secrets, ca_ip = cluster
    blocks = [pod for pod in started if pod.block != "ca"]
    for pod in blocks:  # the join init container left an SVID where the instance loads it
        svid = tmp_path / "pods" / pod.name / "volumes" / "state" / "identity" / pod.name
        assert (svid / "svid.pem").is_file(), pod.name

    def all_probes_pass() -> bool:
        return all(
            netns.get(f"{pod.scheme}://{pod.ip}:{pod.admin_port}{path}")[0] == 200
            for pod in blocks
            for path in pod.probes.values()
        )

    _wait(all_probes_pass, "the rendered probes to pass", tmp_path)
    expected = {pod.name for pod in blocks}
    first = next(pod for pod in blocks if pod.block == "clean")
    assert first.scheme == "https"  # mTLS strict: probes over TLS, no client certificate
    client = tmp_path / "client-identity"  # a caller outside the mesh joins like a pod
    join = subprocess.run(
        netns.exec(
            sys.executable,
            "-m",
            "eblocks",
            "ca",
            "join",
            "--ca-url",
            f"https://{ca_ip}:8443",
            "--out",
            str(client),
        ),
        env={**os.environ, "EBLOCKS_JOIN_TOKEN": cluster_secrets["textpipe-join-tokens"]["clean"]},
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert join.returncode == 0, join.stderr
    url = f"https://{first.ip}:{first.admin_port}/v1/members"
    assert netns.get(url)[0] == 401  # data needs a certificate of the mesh

    def clean_sees_everyone() -> bool:
        code, body = netns.get(url, client)
        if code != 200:
            return False
        rows = orjson.loads(body)["members"]
        # off loopback a gossip id is `<instance>@<host>` (ids stay unique across hosts)
        alive = {r["instance"].partition("@")[0] for r in rows if r.get("status") == "alive"}
        return alive >= expected

    _wait(clean_sees_everyone, "gossip to converge", tmp_path)

    call = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from eblocks import Message, MeshClient\n"
        "from eblocks.security.auth import Auth\n"
        "from eblocks.spec import load_spec\n"
        "from eblocks.testing import StaticResolver\n"
        "async def main():\n"
        "    spec = load_spec(sys.argv[1])\n"
        "    auth = Auth(spec, Path(sys.argv[4]))\n"
        "    first = StaticResolver({'clean': [sys.argv[2]]})\n"
        "    client = MeshClient(spec, first, auth=auth)\n"
        "    try:\n"
        "        reply = await client.call('ingest', Message(sys.argv[3].encode()))\n"
        "        sys.stdout.write(reply.body.decode())\n"
        "    finally:\n"
        "        await client.aclose()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        netns.exec(
            sys.executable,
            "-c",
            call,
            str(tmp_path / "mesh.yaml"),
            f"{first.ip}:8080",
            "The quick brown fox jumps over the lazy dog, the fox!",
            str(client),
        ),
        capture_output=True,
        text=True,
        timeout=BOUND,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr + _logs(tmp_path)
    result = orjson.loads(done.stdout)
    assert result["words"] == 8
    assert result["top"][0] == ["fox", 2]

    for pod in blocks:
        for proc in pod.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + max(pod.grace for pod in blocks)
    for pod in blocks:
        code = pod.procs[-1].wait(timeout=max(0.1, deadline - time.monotonic()))
        assert code == 0, f"{pod.name} exited {code}:\n{_logs(tmp_path)}"


POLICIES = """
policies:
  blocks:
    count:
      bulkhead: {{max_concurrent: {n}}}
"""


def _apply(netns: Netns, spec: Path, state: Path, url: str) -> subprocess.CompletedProcess[str]:
    """The operator's `eblocks apply`, from where the pods' addresses are reachable."""
    argv = [sys.executable, "-m", "eblocks", "apply", str(spec), "--state-dir", str(state)]
    return subprocess.run(
        netns.exec(*argv, "--admin-url", url, "--timeout", str(BOUND)),
        capture_output=True,
        text=True,
        timeout=BOUND * 2,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TEXTPIPE), *sys.path])},
    )


def _version(netns: Netns, pod: Pod, identity: Path) -> int | None:
    code, body = netns.get(f"https://{pod.ip}:{pod.admin_port}/v1/policies", identity)
    return int(orjson.loads(body)["version"]) if code == 200 else None


def _alive(netns: Netns, pod: Pod, identity: Path) -> set[str]:
    code, body = netns.get(f"https://{pod.ip}:{pod.admin_port}/v1/members", identity)
    if code != 200:
        return set()
    rows = orjson.loads(body)["members"]
    return {r["instance"].partition("@")[0] for r in rows if r.get("status") == "alive"}


def test_rendered_pods_take_policies_from_eblocks_apply_and_only_from_the_mesh_key(
    cluster: tuple[Netns, list[Pod], dict[str, dict[str, str]], str], tmp_path: Path
) -> None:
    netns, started, _, _ = cluster
    blocks = [pod for pod in started if pod.block != "ca"]
    operator = tmp_path / "operator"
    spec = load_spec(tmp_path / "mesh.yaml")
    LocalIssuer(spec, operator / "textpipe").issue_client()  # what apply does; to watch here
    cli = operator / "textpipe" / "identity" / "cli"
    clean = next(pod for pod in blocks if pod.block == "clean")
    everyone = {pod.name for pod in blocks}
    _wait(lambda: _alive(netns, clean, cli) >= everyone, "gossip to converge", tmp_path)
    assert {_version(netns, pod, cli) for pod in blocks} == {0}

    source = (TEXTPIPE / "mesh.yaml").read_text()
    versions = {n: tmp_path / f"mesh-{n}.yaml" for n in (7, 8, 9)}
    for n, path in versions.items():
        path.write_text(source + POLICIES.format(n=n))
    url = f"https://{clean.ip}:{clean.admin_port}"
    done = _apply(netns, versions[7], operator, url)
    assert done.returncode == 0, done.stdout + done.stderr + _logs(tmp_path)
    assert "applied policies v1" in done.stdout
    assert {_version(netns, pod, cli) for pod in blocks} == {1}  # apply waited for all

    # A pod replaced (new name, new address, fresh state) resumes v1 from its peers.
    old = next(pod for pod in blocks if pod.block == "count")
    for proc in old.procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=BOUND)
    netns.ip("addr", "add", "198.18.0.99/32", "dev", "lo")
    trust = PolicyTrust.from_state(operator / "textpipe")  # rendering again gives the same
    again = render_kubernetes(load_spec(TEXTPIPE / "mesh.yaml"), KubeOptions(policy=trust))
    documents = [doc for docs in again.values() for doc in docs]
    configmaps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    kubelet = Kubelet(tmp_path / "pods", configmaps, cluster[2])
    deployment = next(d for d in again["10-block-count.yaml"] if d["kind"] == "Deployment")
    new = _start(kubelet, netns, "textpipe-count-new", deployment, "198.18.0.99", tmp_path)
    started.append(new)
    _wait(lambda: _version(netns, new, cli) == 1, "the new pod to resume v1 from a peer", tmp_path)
    _wait(lambda: old.name not in _alive(netns, clean, cli), "the old pod to leave", tmp_path)

    done = _apply(netns, versions[8], operator, url)
    assert done.returncode == 0, done.stdout + done.stderr + _logs(tmp_path)
    assert _version(netns, new, cli) == 2  # the run rendered into its ConfigMap, as before

    # Another key: a client certificate of the mesh is not enough to change its policies.
    intruder = tmp_path / "intruder" / "textpipe"
    shutil.copytree(operator / "textpipe" / "ca", intruder / "ca")
    ensure_signing_key(intruder)
    done = _apply(netns, versions[9], tmp_path / "intruder", url)
    assert done.returncode != 0
    assert "refused the bundle" in done.stderr + done.stdout
    assert "signed by key" in done.stderr + done.stdout
    live = [pod for pod in blocks if pod is not old] + [new]
    assert {_version(netns, pod, cli) for pod in live} == {2}


GATEWAY_SPEC = """\
apiVersion: eblocks/v1
mesh: edgy
security: {mtls: disable}
blocks:
  api: {handler: "handlers:clean"}
  edge:
    gateway:
      kind: ingress
      tls: {cert: certs/edge.pem, key: certs/edge-key.pem}
      routes: [{name: all, to: api}]
"""


def _self_signed(name: str) -> tuple[str, str]:
    """The operator's certificate and key (PEM), for ``name``."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


_TLS_POST = """\
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False  # the address, not the name; the chain is what is checked
request = urllib.request.Request(sys.argv[1], data=b"Hello   Gateway", method="POST")
try:
    print(urllib.request.urlopen(request, timeout=2, context=ctx).read().decode())
except OSError as exc:
    print(f"failed: {exc}")
"""


def test_a_rendered_gateway_serves_the_operators_certificate_from_its_secret(
    tmp_path: Path,
) -> None:
    reason = _usable()
    if reason:
        pytest.skip(reason)
    site = tmp_path / "site"
    (site / "certs").mkdir(parents=True)
    (site / "mesh.yaml").write_text(GATEWAY_SPEC)
    cert, key = _self_signed("edge.example")
    (site / "certs" / "edge.pem").write_text(cert)
    (site / "certs" / "edge-key.pem").write_text(key)
    spec = load_spec(site / "mesh.yaml")
    rendered = render_kubernetes(spec)
    documents = [doc for docs in rendered.values() for doc in docs]
    assert all(d["kind"] != "Secret" for d in documents)
    assert "BEGIN" not in str(documents)  # neither the certificate nor its key
    command = operator_commands(spec, Names("edgy", "edgy"), str(site))
    assert command == [
        f"kubectl -n edgy create secret tls edgy-edge-tls "
        f"--cert={site}/certs/edge.pem --key={site}/certs/edge-key.pem"
    ]
    # the Secrets the operator makes: that command's, and the gossip key
    cluster_secrets = {
        "edgy-edge-tls": {"tls.crt": cert, "tls.key": key},
        "edgy-gossip-key": {"gossip.key": secrets.token_hex(32)},
    }
    configmaps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    kubelet = Kubelet(tmp_path / "pods", configmaps, cluster_secrets)
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    ips = {"edgy-api": "198.18.0.1", "edgy-edge": "198.18.0.2"}
    started: list[Pod] = []
    with Netns({"edgy-gossip.edgy.svc": list(ips.values())}) as netns:
        try:
            for name, ip in ips.items():
                started.append(_start(kubelet, netns, f"{name}-0", deployments[name], ip, tmp_path))

            def through_the_gateway() -> str | None:
                done = subprocess.run(
                    netns.exec(
                        sys.executable,
                        "-c",
                        _TLS_POST,
                        "https://198.18.0.2:8080/",
                        str(site / "certs" / "edge.pem"),
                    ),
                    capture_output=True,
                    text=True,
                    timeout=BOUND,
                )
                answer = done.stdout.strip()
                return answer if answer == "hello gateway" else None

            _wait(
                lambda: through_the_gateway() is not None,
                "the gateway to answer over its TLS",
                tmp_path,
            )
        finally:
            _kill(started)
