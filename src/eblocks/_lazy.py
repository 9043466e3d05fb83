"""Names a package exports from its modules, imported on first use (PEP 562).

A package's ``__init__`` that re-exports from heavy modules would make every
import of any of its modules pay for all of them (the CLI, a block's
process, `eblocks validate`). With::

    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"Name": "module", ...})

``from package import Name`` imports ``package.module`` when ``Name`` is first
asked for and keeps it in the package's namespace; type checkers see the
same names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__``: ``homes`` maps a name to its module.

    A module is given relative to the package (``"auth"``), or absolute
    (``"eblocks.block.block"``) when it lives elsewhere.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = home if home.startswith("eblocks.") else f"{package}.{home}"
        value = getattr(import_module(module), name)
        namespace[name] = value  # once: later reads are plain module attributes
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
