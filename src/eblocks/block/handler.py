"""Turn a user's handler into the inbound `Handle` the block runs.

A handler is ``async def h(msg, ctx)`` or ``def h(msg, ctx)`` (one-argument
forms ``h(msg)`` too). Plain functions run in the block's thread pool so a
CPU-bound or blocking handler never stalls the event loop. The return value
may be a `Message`, bytes, str, a dict/list (sent as JSON) or None.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import orjson

from eblocks.block.context import Context
from eblocks.block.inbound import Handle
from eblocks.errors import HandlerError, HandlerImportError, MeshError
from eblocks.message import Message

__all__ = ["adapt_handler", "check_handler", "load_ref", "to_message"]

UserHandler = Callable[..., Any]


def load_ref(block: str, ref: str) -> Any:
    """Import ``package.module:attr``; errors name the block, the module and the cause."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise HandlerImportError(block, ref, "expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything on import
        raise HandlerImportError(block, ref, f"{exc.__class__.__name__}: {exc}") from exc
    try:
        target = getattr(module, attr)
    except AttributeError as exc:
        raise HandlerImportError(block, ref, f"module {module_name!r} has no {attr!r}") from exc
    if not callable(target):
        raise HandlerImportError(block, ref, f"{attr!r} is not callable")
    return target


def check_handler(block: str, ref: str, fn: UserHandler) -> None:
    """Refuse, at start, a handler that cannot be called as ``fn(msg)`` or ``fn(msg, ctx)``.

    Its first call would otherwise fail with a `TypeError` inside the block,
    answered as a 500 on every request.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or an extension's callable: not inspectable
        return
    for args in (("msg", "ctx"), ("msg",)):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return
    raise HandlerImportError(
        block, ref, f"{ref.partition(':')[2]}{signature} must take (msg) or (msg, ctx)"
    )


def adapt_handler(fn: UserHandler, executor: Executor | None = None) -> Handle:
    """Wrap ``fn`` into a `Handle`: async or in the executor, result as a Message."""
    takes_ctx = _arity(fn) >= 2
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )

    async def handle(msg: Message, ctx: Context) -> Message:
        args = (msg, ctx) if takes_ctx else (msg,)
        try:
            if is_async:
                result = await fn(*args)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(executor, functools.partial(fn, *args))
            return to_message(result)
        except MeshError:
            raise
        except Exception as exc:
            ctx.logger.exception("handler of block %r raised", ctx.block)
            raise _handler_error(exc, ctx) from exc

    return handle


def to_message(result: Any) -> Message:
    """The handler's return value as a Message."""
    if isinstance(result, Message):
        return result
    if result is None:
        return Message()
    if isinstance(result, bytes | bytearray | memoryview):
        return Message(bytes(result))
    if isinstance(result, str):
        return Message(result.encode(), {"content-type": "text/plain; charset=utf-8"})
    if isinstance(result, dict | list):
        return Message(orjson.dumps(result), {"content-type": "application/json"})
    raise TypeError(
        f"handler returned {type(result).__name__}; "
        "expected Message, bytes, str, dict, list or None"
    )


def _handler_error(exc: Exception, ctx: Context) -> HandlerError:
    detail: dict[str, Any] = {"block": ctx.block, "exception": type(exc).__name__}
    where = f"block {ctx.block!r}"
    if ctx.pattern is not None:
        detail.update(pattern=ctx.pattern, stage=ctx.stage)
        where = f"stage {ctx.stage} ({ctx.block}) of pattern {ctx.pattern!r}"
    text = str(exc)
    message = f"handler failed in {where}: {type(exc).__name__}"
    if text:
        message += f": {text[:200]}"
    return HandlerError(message, origin=ctx.block, detail=detail)


def _arity(fn: UserHandler) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return len(positional)
