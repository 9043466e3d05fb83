"""Seeds and the gossip key of a running mesh: static, DNS, and the local supervisor.

A gossip member needs the mesh key and at least one address of another member
to join; afterwards any member is as good a seed as any other, and losing all
seeds changes nothing. Three sources, all optional and merged:

- ``discovery.seeds`` in the spec: a static ``host:port`` list;
- ``discovery.dns``: a name resolving to many addresses (a Kubernetes headless
  Service), each with ``discovery.dns_port``;
- the local supervisor: it writes ``<state>/gossip.json`` with the gossip
  address of every instance it started that is ready.

The key comes from ``discovery.key`` or ``discovery.key_file`` (relative to the
spec's folder); with neither, the supervisor generates one for this machine's
mesh. Either way the supervisor writes it to ``<state>/gossip.key`` (mode 0600),
where the instances it starts read it. A key file may hold several keys, one
per line: the first signs, all are accepted (key rotation). Running instances
re-read ``<state>/gossip.key`` when it changes, and keep accepting a key that
left the file for ``discovery.key_window``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from eblocks.discovery.swim import Addr
from eblocks.discovery.wire import key_id_of
from eblocks.errors import DiscoveryError
from eblocks.spec.models import DiscoverySpec

__all__ = [
    "KEY_FILE",
    "SEEDS_FILE",
    "parse_addr",
    "parse_keys",
    "prepare_key",
    "read_key",
    "read_keys",
    "read_supervisor_seeds",
    "resolve_dns",
    "static_seeds",
    "write_supervisor_seeds",
]

KEY_FILE = "gossip.key"
SEEDS_FILE = "gossip.json"


def parse_addr(text: str) -> Addr:
    """``host:port`` or ``[v6]:port`` as an address tuple."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DiscoveryError(f"bad seed address {text!r}: expected host:port")
    return (host[1:-1] if host.startswith("[") and host.endswith("]") else host, int(port))


def static_seeds(spec: DiscoverySpec) -> list[Addr]:
    return [parse_addr(seed) for seed in spec.seeds]


async def resolve_dns(name: str, port: int) -> list[Addr]:
    """Every address ``name`` resolves to (UDP), with ``port``; [] when it does not resolve."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_DGRAM)
    except OSError:
        return []  # not (yet) resolvable: a headless Service with no ready pod, a typo
    return list(dict.fromkeys((str(info[4][0]), port) for info in infos))


def prepare_key(spec: DiscoverySpec, spec_dir: Path, state_dir: Path) -> Path:
    """Write the mesh gossip key to ``<state>/gossip.key`` (0600) and return its path.

    A key the spec gives (inline or by file) always wins; without one, a key
    generated earlier for this state dir is kept (restarts stay compatible),
    else a new random one is made.
    """
    path = state_dir / KEY_FILE
    if spec.key is not None:
        keys = [spec.key.encode()]
    elif spec.key_file is not None:
        source = Path(spec.key_file).expanduser()
        source = source if source.is_absolute() else spec_dir / source
        try:
            keys = parse_keys(source.read_bytes(), f"discovery.key_file {source}")
        except OSError as exc:
            raise DiscoveryError(f"discovery.key_file {source}: {exc.strerror}") from exc
    elif path.exists():
        return path
    else:
        keys = [secrets.token_hex(32).encode()]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, b"\n".join(keys) + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def parse_keys(data: bytes, where: str) -> list[bytes]:
    """The keys of a key file, one per line (the first signs); blank lines are skipped."""
    keys = [line.strip() for line in data.splitlines() if line.strip()]
    if not keys:
        raise DiscoveryError(f"{where}: no key in the file")
    for number, key in enumerate(keys, 1):
        if len(key) < 16:
            raise DiscoveryError(f"{where}: key {number} must be at least 16 bytes")
    if len({key_id_of(key) for key in keys}) != len(set(keys)):
        raise DiscoveryError(f"{where}: two keys share a key id; replace one of them")
    return keys


def read_keys(state_dir: Path) -> list[bytes]:
    """Every key of ``<state>/gossip.key``, the signing one first."""
    path = state_dir / KEY_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DiscoveryError(f"no gossip key at {path}: {exc.strerror}") from exc
    return parse_keys(data, str(path))


def read_key(state_dir: Path) -> bytes:
    """The signing key of ``<state>/gossip.key``."""
    return read_keys(state_dir)[0]


def write_supervisor_seeds(state_dir: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Publish the gossip addresses of ready instances (``instance``, ``host``, ``gossip_port``)."""
    items = [dict(row) for row in rows if row.get("gossip_port")]
    path = state_dir / SEEDS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps({"members": items}, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def read_supervisor_seeds(state_dir: Path, *, exclude: str = "") -> dict[str, Addr]:
    """The gossip address of each ready local instance but ``exclude``, by instance id."""
    try:
        data = orjson.loads((state_dir / SEEDS_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    found: dict[str, Addr] = {}
    for row in data.get("members", []) if isinstance(data, dict) else []:
        try:
            instance, addr = str(row["instance"]), (str(row["host"]), int(row["gossip_port"]))
        except (KeyError, TypeError, ValueError):
            continue
        if instance != exclude:
            found[instance] = addr
    return found
