"""`eblocks render --target docker`: a Dockerfile per block and a compose file (not built here)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from eblocks.cli import app
from eblocks.deploy.docker import DockerOptions, docker_files
from eblocks.deploy.output import write_files
from eblocks.errors import RenderError
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
        [f"{block}.Dockerfile" for block in blocks] + ["compose.yaml", "mesh.yaml"]
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


def test_external_blocks_are_refused_by_name_and_nothing_is_written(tmp_path: Path) -> None:
    """An external block's program is not a Python block's image: no compose file pretends."""
    spec = tmp_path / "mesh.yaml"
    spec.write_text(
        "apiVersion: eblocks/v1\nmesh: shop\nblocks:\n"
        "  web: {external: {command: [/srv/web], port: 8080}}\n"
        '  store: {handler: "handlers:store"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    with pytest.raises(RenderError, match=r"block 'web' is external.*--target kubernetes"):
        docker_files(load_spec(spec), DockerOptions(spec_dir=tmp_path, out=out))
    state = ["--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(
        app, ["render", str(spec), "--target", "docker", "--out", str(out), *state]
    )
    assert result.exit_code == 1
    assert "block 'web' is external" in result.output
    assert not out.exists()
