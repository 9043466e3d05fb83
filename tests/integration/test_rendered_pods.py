"""The rendered Deployments run for real: each "pod" is the container's own command line.

No cluster here, so the test plays the kubelet for the textpipe example: it
renders the manifests, and for every replica of every Deployment runs the
container's ``command`` + ``args`` with the ``$(VAR)`` references expanded
from the container's env (the downward API filled in: pod name, pod IP), the
ConfigMap's ``mesh.yaml`` and a gossip key where the volumes mount them, and
the image's ``PYTHONPATH`` (the example's folder). The pods live in one
network namespace the test makes, each on its own address in 198.18.0.0/15;
the headless Service's name resolves to all of them through the namespace's
``/etc/hosts`` (``ip netns exec`` mounts ``/etc/netns/<ns>/hosts``), as the
cluster DNS would. Then, as the kubelet and a client would:

- the rendered probes (``GET <admin port><path>`` on the pod IP) answer 200;
- the pods find each other through the gossip seeded by that name;
- the pipeline, called at its first stage, answers through every stage;
- SIGTERM stops every pod cleanly within its terminationGracePeriodSeconds.
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

from eblocks.deploy import KubeOptions, render_kubernetes
from eblocks.deploy.names import SPEC_DIR, STATE_DIR
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
    proc: subprocess.Popen[bytes] | None = None


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion; an unknown variable stays as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def container_env(container: dict[str, Any], downward: Mapping[str, str]) -> dict[str, str]:
    """The container's environment, downward-API fields filled in, in declaration order."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            env[item["name"]] = downward[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[item["name"]] = expand(item["value"], env)
    return env


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

    def get(self, url: str) -> tuple[int, bytes]:
        script = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=2)\n"
            "    code, body = r.status, r.read()\n"
            "except urllib.error.HTTPError as e:\n"
            "    code, body = e.code, e.read()\n"
            "except OSError:\n"
            "    code, body = 0, b''\n"
            "sys.stdout.buffer.write(str(code).encode() + b'\\n' + body)\n"
        )
        done = subprocess.run(
            self.exec(sys.executable, "-c", script, url), capture_output=True, timeout=BOUND
        )
        head, _, body = done.stdout.partition(b"\n")
        return int(head or 0), body


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[tuple[Netns, list[Pod], dict[str, Any]]]:
    reason = _usable()
    if reason:
        pytest.skip(reason)
    spec = load_spec(TEXTPIPE / "mesh.yaml")
    rendered = render_kubernetes(spec, KubeOptions(identity=False))
    documents = [doc for docs in rendered.values() for doc in docs]
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    deployments = sorted(
        (d for d in documents if d["kind"] == "Deployment"), key=lambda d: d["metadata"]["name"]
    )
    spec_dir = tmp_path / "etc-eblocks"  # the ConfigMap volume
    spec_dir.mkdir()
    (spec_dir / "mesh.yaml").write_text(config["data"]["mesh.yaml"])
    key = secrets.token_hex(32)  # the Secret the operator creates
    plan: list[tuple[Pod, list[str], dict[str, str]]] = []
    for deployment in deployments:
        template = deployment["spec"]["template"]["spec"]
        container = template["containers"][0]
        for replica in range(deployment["spec"]["replicas"]):
            pod_name = f"{deployment['metadata']['name']}-{replica}"
            ip = f"198.18.0.{len(plan) + 1}"
            state = tmp_path / pod_name / "state"  # the emptyDir, with the key mounted in it
            state.mkdir(parents=True)
            (state / "gossip.key").write_text(key)
            downward = {
                "metadata.name": pod_name,
                "metadata.namespace": "textpipe",
                "status.podIP": ip,
                "spec.nodeName": "node-0",
            }
            env = container_env(container, downward)
            argv = [expand(arg, env) for arg in container["command"] + container["args"]]
            argv = [a.replace(SPEC_DIR, str(spec_dir)).replace(STATE_DIR, str(state)) for a in argv]
            assert argv[0] == "python"
            argv[0] = sys.executable
            probes = {
                kind: container[f"{kind}Probe"]["httpGet"]["path"]
                for kind in ("startup", "liveness", "readiness")
            }
            admin = next(p["containerPort"] for p in container["ports"] if p["name"] == "admin")
            pod = Pod(
                pod_name,
                env["EBLOCKS_BLOCK"],
                ip,
                template["terminationGracePeriodSeconds"],
                admin,
                probes,
            )
            plan.append((pod, argv, env))
    seeds = next(d for d in documents if d["kind"] == "Service" and d["spec"].get("clusterIP"))
    dns = f"{seeds['metadata']['name']}.{seeds['metadata']['namespace']}.svc"
    with Netns({dns: [pod.ip for pod, _, _ in plan]}) as netns:
        started: list[Pod] = []
        try:
            for pod, argv, env in plan:
                log = (tmp_path / f"{pod.name}.log").open("wb")
                full_env = {**os.environ, **env, "PYTHONPATH": str(TEXTPIPE)}  # the image's /app
                pod.proc = subprocess.Popen(
                    netns.exec(*argv),
                    env=full_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                    start_new_session=True,
                )
                log.close()
                started.append(pod)
            yield netns, started, config
        finally:
            for pod in started:
                if pod.proc is not None and pod.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pod.proc.pid, signal.SIGKILL)
                    pod.proc.wait(timeout=BOUND)


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*.log"))


def _wait(predicate: Callable[[], bool], what: str, tmp_path: Path) -> None:
    try:
        wait_for(predicate, timeout=BOUND, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(tmp_path)}") from None


def test_rendered_pods_run_probe_gossip_serve_and_drain(
    pods: tuple[Netns, list[Pod], dict[str, Any]], tmp_path: Path
) -> None:
    netns, started, _ = pods

    def all_probes_pass() -> bool:
        return all(
            netns.get(f"http://{pod.ip}:{pod.admin_port}{path}")[0] == 200
            for pod in started
            for path in pod.probes.values()
        )

    _wait(all_probes_pass, "the rendered probes to pass", tmp_path)

    expected = {pod.name for pod in started}

    def clean_sees_everyone() -> bool:
        code, body = netns.get(f"http://{started[0].ip}:{started[0].admin_port}/v1/members")
        if code != 200:
            return False
        rows = orjson.loads(body)["members"]
        return {r["instance"] for r in rows if r.get("status") == "alive"} >= expected

    _wait(clean_sees_everyone, "gossip to converge", tmp_path)

    first = next(pod for pod in started if pod.block == "clean")
    call = (
        "import asyncio, sys\n"
        "from eblocks import Message, MeshClient\n"
        "from eblocks.spec import load_spec\n"
        "from eblocks.testing import StaticResolver\n"
        "async def main():\n"
        "    first = StaticResolver({'clean': [sys.argv[2]]})\n"
        "    client = MeshClient(load_spec(sys.argv[1]), first)\n"
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
            str(tmp_path / "etc-eblocks" / "mesh.yaml"),
            f"{first.ip}:8080",
            "The quick brown fox jumps over the lazy dog, the fox!",
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

    for pod in started:
        assert pod.proc is not None
        os.killpg(pod.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + max(pod.grace for pod in started)
    for pod in started:
        assert pod.proc is not None
        code = pod.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        assert code == 0, f"{pod.name} exited {code}:\n{_logs(tmp_path)}"
