"""adapt_handler / to_message / load_ref: how a user's function becomes a block's PM."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from eblocks.block.context import Context
from eblocks.block.handler import adapt_handler, check_handler, load_ref, to_message
from eblocks.errors import HandlerError, HandlerImportError, OverloadedError
from eblocks.message import Message


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="pm")
    yield pool
    pool.shutdown(wait=True)


def context(block: str = "b") -> Context:
    return Context(block=block, instance=f"{block}-1", request_id="req-1")


async def test_async_handler_with_context() -> None:
    seen: list[str] = []

    async def handle(msg: Message, ctx: Context) -> bytes:
        seen.append(ctx.request_id)
        return msg.body.upper()

    out = await adapt_handler(handle)(Message(b"hi"), context())
    assert out.body == b"HI"
    assert seen == ["req-1"]


async def test_async_handler_with_message_only() -> None:
    async def handle(msg: Message) -> str:
        return msg.text()[::-1]

    assert (await adapt_handler(handle)(Message(b"abc"), context())).body == b"cba"


async def test_async_callable_object() -> None:
    loop_thread = threading.get_ident()

    class Upper:
        def __init__(self) -> None:
            self.thread = 0

        async def __call__(self, msg: Message, ctx: Context) -> bytes:
            self.thread = threading.get_ident()
            return msg.body.upper()

    upper = Upper()
    assert (await adapt_handler(upper)(Message(b"x"), context())).body == b"X"
    assert upper.thread == loop_thread


@pytest.mark.parametrize("takes_ctx", [False, True])
async def test_plain_handler_runs_in_the_executor_thread(
    executor: ThreadPoolExecutor, takes_ctx: bool
) -> None:
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []
    contexts: list[Context] = []

    def one(msg: Message) -> bytes:
        threads.append(threading.current_thread())
        return msg.body + b"!"

    def two(msg: Message, ctx: Context) -> bytes:
        contexts.append(ctx)
        return one(msg)

    ctx = context()
    out = await adapt_handler(two if takes_ctx else one, executor)(Message(b"hi"), ctx)
    assert out.body == b"hi!"
    assert threads[0] is not loop_thread
    assert threads[0].name.startswith("pm")
    assert contexts == ([ctx] if takes_ctx else [])


async def test_plain_handler_without_executor_uses_the_loop_default() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def handle(msg: Message) -> None:
        threads.append(threading.get_ident())

    await adapt_handler(handle)(Message(), context())
    assert threads
    assert threads[0] != loop_thread


async def test_var_positional_handler_gets_the_context() -> None:
    got: list[int] = []

    async def handle(*args: Any) -> None:
        got.append(len(args))

    await adapt_handler(handle)(Message(), context())
    assert got == [2]


def test_message_passes_through() -> None:
    msg = Message(b"m", {"x-out": "1"})
    assert to_message(msg) is msg


@pytest.mark.parametrize(
    ("result", "body", "content_type"),
    [
        (b"raw", b"raw", None),
        (bytearray(b"arr"), b"arr", None),
        (memoryview(b"view"), b"view", None),
        ("text", b"text", "text/plain; charset=utf-8"),
        ({"a": 1}, b'{"a":1}', "application/json"),
        ([1, "two"], b'[1,"two"]', "application/json"),
        (None, b"", None),
    ],
)
def test_return_conversions(result: object, body: bytes, content_type: str | None) -> None:
    msg = to_message(result)
    assert msg.body == body
    assert msg.header("content-type") == content_type


async def test_return_conversions_through_the_handler() -> None:
    async def handle(msg: Message) -> dict[str, object]:
        return {"n": len(msg.body)}

    out = await adapt_handler(handle)(Message(b"four"), context())
    assert orjson.loads(out.body) == {"n": 4}


async def test_bad_return_type_is_a_handler_error() -> None:
    async def handle(msg: Message) -> int:
        return 42

    with pytest.raises(HandlerError) as info:
        await adapt_handler(handle)(Message(), context())
    assert "handler returned int" in info.value.message
    assert info.value.detail["exception"] == "TypeError"


async def test_raising_handler_is_a_handler_error_naming_the_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handle(msg: Message) -> bytes:
        raise ValueError("bad input")

    with caplog.at_level(logging.ERROR), pytest.raises(HandlerError) as info:
        await adapt_handler(handle)(Message(), context("b"))
    err = info.value
    assert err.message == "handler failed in block 'b': ValueError: bad input"
    assert err.origin == "b"
    assert err.detail == {"block": "b", "exception": "ValueError"}
    assert "Traceback" not in err.message
    assert isinstance(err.__cause__, ValueError)
    assert "handler of block 'b' raised" in caplog.text  # the traceback goes to the log


async def test_handler_error_names_pattern_and_stage() -> None:
    async def handle(msg: Message) -> bytes:
        raise KeyError("missing")

    ctx = context("c")
    ctx.pattern, ctx.stage = "ingest", 2
    with pytest.raises(HandlerError) as info:
        await adapt_handler(handle)(Message(), ctx)
    err = info.value
    assert err.message.startswith("handler failed in stage 2 (c) of pattern 'ingest': KeyError")
    assert err.detail == {"block": "c", "exception": "KeyError", "pattern": "ingest", "stage": 2}


async def test_long_exception_text_is_cut() -> None:
    async def handle(msg: Message) -> bytes:
        raise RuntimeError("x" * 1000)

    with pytest.raises(HandlerError) as info:
        await adapt_handler(handle)(Message(), context())
    assert len(info.value.message) < 300


async def test_mesh_errors_from_the_handler_pass_through() -> None:
    busy = OverloadedError("try later", detail={"retry_after": 1})

    async def handle(msg: Message) -> bytes:
        raise busy

    with pytest.raises(OverloadedError) as info:
        await adapt_handler(handle)(Message(), context())
    assert info.value is busy


def test_load_ref() -> None:
    assert load_ref("b", "json:dumps") is __import__("json").dumps


def test_load_ref_missing_module() -> None:
    with pytest.raises(HandlerImportError) as info:
        load_ref("clean", "no_such_module_xyz:handle")
    err = info.value
    assert isinstance(err, ImportError)
    assert (err.block, err.ref) == ("clean", "no_such_module_xyz:handle")
    assert str(err).startswith("block 'clean': cannot load handler 'no_such_module_xyz:handle'")
    assert "ModuleNotFoundError" in err.cause
    assert "no_such_module_xyz" in err.cause


def test_load_ref_missing_attribute() -> None:
    with pytest.raises(HandlerImportError) as info:
        load_ref("clean", "json:no_such_function")
    assert info.value.cause == "module 'json' has no 'no_such_function'"
    assert "block 'clean'" in str(info.value)


def test_load_ref_not_callable() -> None:
    with pytest.raises(HandlerImportError, match="'ascii_letters' is not callable") as info:
        load_ref("clean", "string:ascii_letters")
    assert info.value.block == "clean"


@pytest.mark.parametrize("ref", ["json", ":dumps", "json:"])
def test_load_ref_malformed(ref: str) -> None:
    with pytest.raises(HandlerImportError, match=r"expected 'package\.module:function'"):
        load_ref("clean", ref)


def test_load_ref_module_raising_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eblocks_broken_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HandlerImportError) as info:
        load_ref("risk", "eblocks_broken_mod:handle")
    assert info.value.cause == "RuntimeError: boom at import"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "eblocks_broken_mod" not in sys.modules


def _msg_only(msg: Message) -> None: ...
def _msg_ctx(msg: Message, ctx: object) -> None: ...
def _extra(msg: Message, ctx: object, extra: int) -> None: ...
def _nothing() -> None: ...
def _with_default(msg: Message, ctx: object = None, extra: int = 1) -> None: ...


def test_check_handler_takes_msg_or_msg_and_ctx() -> None:
    for fn in (_msg_only, _msg_ctx, _with_default, lambda *args: None, print):
        check_handler("b", "m:fn", fn)  # print: a builtin, not inspectable on every Python
    for fn in (_extra, _nothing):
        with pytest.raises(HandlerImportError) as info:
            check_handler("b", f"m:{fn.__name__}", fn)
        assert str(info.value).startswith(f"block 'b': cannot load handler 'm:{fn.__name__}': ")
        assert "must take (msg) or (msg, ctx)" in str(info.value)
