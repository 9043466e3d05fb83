"""The public surface: sorted `__all__`, every name importable, every error exported."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import subprocess
import sys

import pytest

import eblocks
import eblocks.errors

MODULES = [
    "eblocks",
    "eblocks._types",
    "eblocks.balance",
    "eblocks.block",
    "eblocks.deploy",
    "eblocks.discovery",
    "eblocks.errors",
    "eblocks.layers",
    "eblocks.message",
    "eblocks.patterns",
    "eblocks.respond",
    "eblocks.security",
    "eblocks.spec",
    "eblocks.testing",
    "eblocks.transport",
    "eblocks.workload",
]


def isort_style(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_top_level_all_is_sorted() -> None:
    assert eblocks.__all__ == sorted(eblocks.__all__)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_style), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert missing == [], f"{name}.__all__ names missing attributes"


def test_top_level_names_import() -> None:
    namespace: dict[str, object] = {}
    exec("from eblocks import *", namespace)
    assert set(eblocks.__all__) <= set(namespace)


def test_every_error_is_exported() -> None:
    errors = {
        name
        for name, obj in inspect.getmembers(eblocks.errors, inspect.isclass)
        if issubclass(obj, eblocks.errors.EblocksError) and obj.__module__ == "eblocks.errors"
    }
    assert errors <= set(eblocks.__all__)


def test_errors_share_one_root_and_their_builtins() -> None:
    assert issubclass(eblocks.SpecError, ValueError)
    assert issubclass(eblocks.HandlerImportError, ImportError)
    assert issubclass(eblocks.MeshTimeoutError, TimeoutError)
    assert issubclass(eblocks.ConnectError, ConnectionError)
    assert issubclass(eblocks.NoEndpointsError, LookupError)
    assert issubclass(eblocks.PortInUseError, OSError)
    for name in eblocks.__all__:
        obj = getattr(eblocks, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, eblocks.EblocksError), name


def test_package_is_typed() -> None:
    assert importlib.resources.files("eblocks").joinpath("py.typed").is_file()


@pytest.mark.parametrize(
    "module",
    [
        "eblocks",
        "eblocks.cli",
        "eblocks.runtime.supervisor",
        "eblocks.runtime.instance",
        "eblocks.workload",
        "eblocks.workload.roles",
        "eblocks.block.context",
        "eblocks.layers.fault",
        "eblocks.telemetry.aggregate",
        "eblocks.spec.units",
    ],
)
def test_a_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """No import cycle hides behind the order other tests happen to import in."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_cli_starts_without_the_mesh() -> None:
    """`eblocks --help` and the commands that only read files load no server, client or models.

    Each command imports what it runs (docs/decisions.md, D63): the CLI's
    start-up stays a fraction of a second.
    """
    heavy = ["aiohttp", "pydantic", "cryptography", "opentelemetry", "eblocks.block.block"]
    code = f"import sys, eblocks.cli.app; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_lazy_packages_give_every_name_they_export() -> None:
    packages = ("eblocks", "eblocks.block", "eblocks.spec", "eblocks.telemetry", "eblocks.runtime")
    for package in (*packages, "eblocks.security"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"
        with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
            getattr(module, "nothing_here")  # noqa: B009 - the module's __getattr__
    assert {"Block", "MeshClient"} <= set(dir(importlib.import_module("eblocks")))
