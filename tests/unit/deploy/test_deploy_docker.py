"""`eblocks render --target docker`: a Dockerfile per block and a compose file (not built here)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import yaml
from typer.testing import CliRunner

from eblocks.cli import app
from eblocks.deploy.docker import PROXY_DOCKERFILE, DockerOptions, docker_files
from eblocks.deploy.output import write_files
from eblocks.deploy.policy import PolicyTrust
from eblocks.deploy.sidecar import proxy_args
from eblocks.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]
HYBRID = ROOT / "examples" / "hybrid"


def _render(out: Path) -> dict[str, str]:
    spec = load_spec(HYBRID / "mesh.yaml")
    return docker_files(spec, DockerOptions(spec_dir=HYBRID, out=out, tag="v1"))


def _instruction(dockerfile: str, keyword: str) -> str:
    lines = [line for line in dockerfile.splitlines() if line.startswith(keyword + " ")]
    assert len(lines) == 1, f"{keyword}: {lines}"
    return lines[0].removeprefix(keyword + " ")


def test_one_dockerfile_per_block_a_compose_file_and_the_spec(tmp_path: Path) -> None:
    files = _render(tmp_path / "docker")
    blocks = sorted(load_spec(HYBRID / "mesh.yaml").blocks)
    assert sorted(files) == sorted(
        [f"{block}.Dockerfile{ignore}" for block in blocks for ignore in ("", ".dockerignore")]
        + ["compose.yaml", "mesh.yaml"]
    )
    assert _render(tmp_path / "docker") == files  # deterministic


def test_compose_builds_each_block_from_the_specs_folder(tmp_path: Path) -> None:
    out = tmp_path / "deploy" / "docker"
    write_files(_render(out), out)
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    spec = load_spec(HYBRID / "mesh.yaml")
    assert sorted(compose["services"]) == sorted(spec.blocks)
    for block, service in compose["services"].items():
        context = (out / service["build"]["context"]).resolve()
        assert context == HYBRID.resolve()
        assert (context / service["build"]["dockerfile"]).resolve() == out / f"{block}.Dockerfile"
        assert service["image"] == f"hybrid-{block}:v1"
        assert service["deploy"]["replicas"] == spec.settings(block).replicas
        assert service["networks"]["mesh"]["aliases"] == ["hybrid-gossip"]
        assert service["configs"] == [{"source": "spec", "target": "/etc/eblocks/mesh.yaml"}]
    assert (out / compose["configs"]["spec"]["file"]).resolve() == out / "mesh.yaml"


def test_the_containers_spec_gossips_through_the_network_alias(tmp_path: Path) -> None:
    text = _render(tmp_path)["mesh.yaml"]
    spec = parse_spec(text, "mesh.yaml")
    assert spec.discovery.mode == "gossip"
    assert spec.discovery.dns == "hybrid-gossip"
    assert spec.blocks == load_spec(HYBRID / "mesh.yaml").blocks


def test_each_image_runs_the_instance_entry_point_for_its_block(tmp_path: Path) -> None:
    dockerfile = _render(tmp_path)["tokenize.Dockerfile"]
    command = json.loads(_instruction(dockerfile, "CMD"))
    assert command[:2] == ["sh", "-c"]
    syntax = subprocess.run(["sh", "-n", "-c", command[2]], capture_output=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    words = shlex.split(command[2])
    assert words[:4] == ["exec", "python", "-m", "eblocks.runtime.instance"]
    options = dict(zip(words[4::2], words[5::2], strict=True))
    assert options["--block"] == "tokenize"
    assert options["--spec"] == "/etc/eblocks/mesh.yaml"
    assert (options["--port"], options["--admin-port"]) == ("8080", "9090")
    lines = dockerfile.splitlines()
    after = lines[lines.index(next(line for line in lines if line.startswith("HEALTHCHECK"))) + 1]
    health = json.loads(after.strip().removeprefix("CMD "))
    compile(health[2], "healthcheck", "exec")  # the probe is valid Python
    assert "/readyz" in health[2]
    assert "'https://" in health[2]  # mTLS strict: the admin port is TLS
    assert _instruction(dockerfile, "USER") == "10001:10001"


def test_the_cli_wants_a_folder_for_docker(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["render", str(HYBRID / "mesh.yaml"), "--target", "docker", "--state-dir", str(tmp_path)],
    )
    assert result.exit_code == 1
    assert "--out" in result.output


_SHOP = """\
apiVersion: eblocks/v1
mesh: shop
blocks:
  web:
    replicas: 2
    env: {GREETING: "costs $5"}
    external:
      command: [/srv/web, --listen, "127.0.0.1:8080", --price, "$5"]
      port: 8080
      upstreams: {store: 7001}
  store: {handler: "handlers:store", env: {PATTERN: "^[a-z]+$"}}
patterns:
  checkout: {pipeline: [web, store]}
"""


def _shop(tmp_path: Path, **options: object) -> tuple[dict[str, str], Path]:
    spec = tmp_path / "mesh.yaml"
    spec.write_text(_SHOP, encoding="utf-8")
    out = tmp_path / "deploy"
    docker = DockerOptions(spec_dir=tmp_path, out=out, **options)  # type: ignore[arg-type]
    return docker_files(load_spec(spec), docker), out


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def test_an_external_block_is_a_proxy_and_its_program_sharing_a_network_per_replica(
    tmp_path: Path,
) -> None:
    """As its pod on Kubernetes: the proxy is the block, the program joins its loopback."""
    policy = PolicyTrust.from_state(tmp_path / "state")
    files, out = _shop(tmp_path, tag="v2", policy=policy)
    assert "web.Dockerfile" not in files  # the program's image is the user's own
    assert {"store.Dockerfile", PROXY_DOCKERFILE, "compose.yaml"} <= set(files)
    write_files(files, out)
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    services = compose["services"]
    assert sorted(services) == ["store", "web_1", "web_1_app", "web_2", "web_2_app"]
    for replica in ("web_1", "web_2"):
        proxy, program = services[replica], services[f"{replica}_app"]
        assert proxy["image"] == "eblocks:v2"
        build = proxy["build"]
        assert (out / build["context"]).resolve() == tmp_path.resolve()
        assert (tmp_path / build["dockerfile"]).resolve() == (out / PROXY_DOCKERFILE).resolve()
        assert proxy["networks"]["mesh"]["aliases"] == ["shop-gossip"]  # gossips as any block
        assert proxy["configs"] == [{"source": "spec", "target": "/etc/eblocks/mesh.yaml"}]
        assert {"type": "bind", "source": "./policy", "target": "/var/run/eblocks/policy",
                "read_only": True} in proxy["volumes"]  # fmt: skip
        assert "/readyz" in proxy["healthcheck"]["test"][-1]
        assert program["network_mode"] == f"service:{replica}"
        assert program["depends_on"] == {replica: {"condition": "service_started"}}
        assert program["image"] == "shop-web:v2"
        assert "networks" not in program  # the proxy's network namespace
        assert "healthcheck" not in program
    # compose reads "$X" from the host's environment: every "$" of ours is written "$$"
    for text in _strings(compose):
        assert "$" not in text.replace("$$", ""), text
    assert services["store"]["environment"] == {"PATTERN": "^[a-z]+$$"}
    program = services["web_1_app"]
    assert [w.replace("$$", "$") for w in program["command"]] == [
        "/srv/web", "--listen", "127.0.0.1:8080", "--price", "$5"
    ]  # fmt: skip
    env = {k: v.replace("$$", "$") for k, v in program["environment"].items()}
    assert env == {
        "EBLOCKS_APP_PORT": "8080",
        "EBLOCKS_UPSTREAM_STORE": "127.0.0.1:7001",
        "GREETING": "costs $5",
    }


def test_the_proxy_runs_eblocks_proxy_for_its_block_as_the_pods_sidecar_does(
    tmp_path: Path,
) -> None:
    files, _ = _shop(tmp_path)
    command = yaml.safe_load(files["compose.yaml"])["services"]["web_2"]["command"]
    assert command[:2] == ["sh", "-c"]
    line = command[2].replace("$$", "$")  # what compose hands the container
    syntax = subprocess.run(["sh", "-n", "-c", line], capture_output=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    words = shlex.split(line)
    assert words[:5] == ["exec", "python", "-m", "eblocks", "proxy"]
    spec = load_spec(tmp_path / "mesh.yaml")
    pod = proxy_args(spec, "web")  # the Kubernetes sidecar's, with the pod's $(VAR)s
    address = "$(hostname -i | cut -d' ' -f1)"
    values = {"$(POD_NAME)": "$(hostname)", "$(POD_IP)": address}
    assert words[4:] == [values.get(word, word) for word in pod]
    options = dict(zip(words[5::2], words[6::2], strict=False))
    assert (options["--block"], options["--app-port"]) == ("web", "8080")
    assert options["--upstream"] == "store=7001"
    dockerfile = files[PROXY_DOCKERFILE]
    assert _instruction(dockerfile, "USER") == "10001:10001"
    assert "COPY wheels /app/wheels" in dockerfile.splitlines()


def test_a_given_proxy_image_is_used_as_is_and_nothing_is_built_for_it(tmp_path: Path) -> None:
    files, out = _shop(tmp_path, proxy_image="registry.example/eblocks:1.2")
    assert PROXY_DOCKERFILE not in files
    services = yaml.safe_load(files["compose.yaml"])["services"]
    assert services["web_1"]["image"] == "registry.example/eblocks:1.2"
    assert "build" not in services["web_1"]
    assert "build" in services["store"]
    state = ["--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(
        app,
        ["render", str(tmp_path / "mesh.yaml"), "--target", "docker", "--out", str(out),
         "--proxy-image", "registry.example/eblocks:1.2", *state],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((out / "compose.yaml").read_text())["services"]
    assert written["web_2"]["image"] == "registry.example/eblocks:1.2"
    assert not (out / PROXY_DOCKERFILE).exists()


def test_the_mesh_secrets_in_the_build_context_are_kept_out_of_every_image(
    tmp_path: Path,
) -> None:
    """The state dir (CA and signing keys) and the render's output (the gossip key) sit in
    the spec's folder when the docs' commands are run there: each Dockerfile's own ignore
    file (BuildKit's ``<Dockerfile>.dockerignore``) keeps them out of the image."""
    files, _ = _shop(tmp_path, state_root=tmp_path / "ops")
    ignores = {name: text for name, text in files.items() if name.endswith(".dockerignore")}
    built = [name for name in files if name.endswith("Dockerfile")]
    assert sorted(ignores) == sorted(f"{name}.dockerignore" for name in built)
    assert PROXY_DOCKERFILE in built  # the proxy's image is built from the same folder
    for text in ignores.values():
        lines = text.splitlines()
        assert {".eblocks", "ops", "deploy", "**/ca.key", "**/signing.key"} <= set(lines)
    outside, _ = _shop(tmp_path, state_root=tmp_path.parent / "elsewhere")
    assert "elsewhere" not in outside["store.Dockerfile.dockerignore"]
