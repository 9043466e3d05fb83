"""The multi-host fixture: three hosts as network namespaces, always deleted afterwards."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from .network import NetnsUnavailable, Network


@pytest.fixture
def network() -> Iterator[Network]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed (scripts/system-deps.sh installs it as root)")
    Network.remove_stale()
    net = Network(hosts=3)
    try:
        net.create()
    except NetnsUnavailable as exc:
        net.destroy()
        pytest.skip(str(exc))
    try:
        yield net
    finally:
        left = net.destroy()
    assert not left, f"namespaces left behind: {left}"
    assert not {*net.hosts, net.switch} & Network.existing()
