"""The current span, read and set on OpenTelemetry's own context variable: the per-request path.

OpenTelemetry's context API takes five calls to make a span current
(`set_span_in_context` -> `set_value` -> `get_current` -> `attach` -> the
runtime context's ``attach``) and four to read it back; the mesh does both
on every request it traces. With the API's default runtime context
(``OTEL_PYTHON_CONTEXT`` unset: `ContextVarsRuntimeContext`), the current
context is one `ContextVar` holding an immutable `Context` mapping, and the
current span is that mapping's value under the API's span key. These
functions work on that variable directly: the same `Context` objects, the
same key, the same variable, so a span made current here is the current span
for `opentelemetry.trace.get_current_span` and for anyone's
`start_as_current_span`, and the other way round (docs/decisions.md, D62).

With another runtime context configured, or an API that no longer has the
variable or key where 1.x keeps them, they fall back to the public API.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, cast

from opentelemetry import context as _context
from opentelemetry.context import Context, attach, detach
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import INVALID_SPAN, Span, get_current_span, set_span_in_context
from opentelemetry.trace import propagation as _propagation

__all__ = ["FAST", "current_span", "enter", "leave"]


def _variable() -> tuple[ContextVar[Context], str] | None:
    """The API's context variable and span key, when the runtime context is the default one."""
    runtime: Any = getattr(_context, "_RUNTIME_CONTEXT", None)
    key = getattr(_propagation, "_SPAN_KEY", None)
    if type(runtime) is not ContextVarsRuntimeContext or type(key) is not str:
        return None
    variable = getattr(runtime, "_current_context", None)
    return (variable, key) if isinstance(variable, ContextVar) else None


_FOUND = _variable()
FAST = _FOUND is not None
"""True when spans are read and set on the context variable itself."""

_SPAN_TYPES: set[type] = set()
"""Types already seen to be spans: `Span` is an ABC, and ``isinstance`` on an ABC costs
as much as the rest of a read (its cache is a weak set behind a Python-level call)."""

if _FOUND is not None:
    _VAR, _KEY = _FOUND
    _get = _VAR.get

    def current_span() -> Span:
        """The span current in this task (`INVALID_SPAN`: none), as `get_current_span()`."""
        span = _get().get(_KEY)
        if span is None:
            return INVALID_SPAN
        kind = type(span)
        if kind in _SPAN_TYPES:
            return cast(Span, span)  # a type seen to be a Span
        if isinstance(span, Span):
            _SPAN_TYPES.add(kind)
            return span
        return INVALID_SPAN

    def enter(span: Span) -> Token[Context]:
        """Make ``span`` current, as ``attach(set_span_in_context(span))``; `leave` undoes it."""
        current = _get()
        return _VAR.set(Context({**current, _KEY: span}) if current else Context({_KEY: span}))

    def leave(token: Token[Context]) -> None:
        """Restore the context that was current before `enter` gave ``token``."""
        _VAR.reset(token)

else:  # another runtime context: the public API

    def current_span() -> Span:
        """The span current in this task (`INVALID_SPAN`: none), as `get_current_span()`."""
        return get_current_span()

    def enter(span: Span) -> Token[Context]:
        """Make ``span`` current, as ``attach(set_span_in_context(span))``; `leave` undoes it."""
        return attach(set_span_in_context(span))

    def leave(token: Token[Context]) -> None:
        """Restore the context that was current before `enter` gave ``token``."""
        detach(token)
