"""Hosts as network namespaces: one switch namespace with a bridge, a veth pair per host.

Addresses are 198.18.0.<i+1>/24 (the benchmarking range, never routed). Names
carry the test process id, so parallel runs do not collide; ``destroy()``
deletes every namespace this object made (their veths and bridge go with them).
"""

from __future__ import annotations

import os
import subprocess

__all__ = ["NetnsUnavailable", "Network"]


class NetnsUnavailable(Exception):
    """The kernel or the user cannot create network namespaces here."""


def _ip(*args: str) -> None:
    run = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if run.returncode != 0:
        raise subprocess.CalledProcessError(run.returncode, run.args, run.stdout, run.stderr)


class Network:
    def __init__(self, hosts: int) -> None:
        tag = f"ebt{os.getpid()}"
        self.switch = f"{tag}-sw"
        self.hosts = [f"{tag}-h{i}" for i in range(hosts)]
        self.addresses = [f"198.18.0.{i + 1}" for i in range(hosts)]
        self.made: list[str] = []

    def create(self) -> None:
        try:
            _ip("netns", "add", self.switch)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise NetnsUnavailable(f"cannot create a network namespace: {detail.strip()}") from exc
        self.made.append(self.switch)
        _ip("-n", self.switch, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, (host, address) in enumerate(zip(self.hosts, self.addresses, strict=True)):
            _ip("netns", "add", host)
            self.made.append(host)
            _ip("link", "add", "eth0", "netns", host, "type", "veth",
                "peer", "name", f"port{i}", "netns", self.switch)  # fmt: skip
            _ip("-n", host, "link", "set", "lo", "up")
            _ip("-n", host, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", host, "link", "set", "eth0", "up")
            _ip("-n", self.switch, "link", "set", f"port{i}", "master", "br0")
            _ip("-n", self.switch, "link", "set", f"port{i}", "up")

    def prefix(self, host: int) -> list[str]:
        """The command prefix that runs a process on ``host``."""
        return ["ip", "netns", "exec", self.hosts[host]]

    def cut(self, host: int) -> None:
        """Partition ``host`` from the others: its switch port goes down."""
        _ip("-n", self.switch, "link", "set", f"port{host}", "down")

    def heal(self, host: int) -> None:
        _ip("-n", self.switch, "link", "set", f"port{host}", "up")

    def destroy(self) -> list[str]:
        """Delete every namespace made; returns the ones that could not be deleted."""
        failed = []
        for name in reversed(self.made):
            try:
                _ip("netns", "del", name)
            except subprocess.CalledProcessError:
                failed.append(name)
        self.made = failed
        return failed

    @staticmethod
    def remove_stale() -> None:
        """Delete namespaces an earlier, crashed test run (a pid no longer running) made."""
        for name in Network.existing():
            tag = name.split("-")[0]
            if tag.startswith("ebt") and tag[3:].isdigit() and not _running(int(tag[3:])):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)

    @staticmethod
    def existing() -> set[str]:
        run = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
        return {line.split()[0] for line in run.stdout.splitlines() if line.strip()}


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
