"""The spans `Tracing` makes itself: unsampled ones (ids only) and recorded ones.

An `UnsampledSpan` is a `NonRecordingSpan` that keeps the ``traceparent``
parts its trace shares (``00-<trace id>-`` and ``-<flags>``, and the
``tracestate`` header), so a child's headers cost one hex span id; its own
ids and `SpanContext` are made only if somebody asks for them.

A `RecordedSpan` keeps what the SDK's span keeps (name, kind, ids, parent,
times, attributes, events, links, status) in plain attributes; when it ends
it becomes the SDK's `ReadableSpan` and goes to the span processor (the
batch processor), which exports it as it would the SDK's own. Attributes of
plain types (str, bool, int, float) under the span's count limit, with no
length limit set, are stored as given; anything else goes through the
SDK's `BoundedAttributes`, which checks, converts and bounds them as the
SDK's span does. Processors get `on_end` only (`on_start` takes the SDK's
span type; the batch processor does nothing there).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import TYPE_CHECKING

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util import types

from eblocks.telemetry.ids import span_hex, trace_hex
from eblocks.telemetry.w3c import (
    FLAGS,
    NEW_UNSAMPLED,
    NEW_UNSAMPLED_SUFFIX,
    caller_parts,
    span_context,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope

__all__ = ["RecordedSpan", "SpanSink", "UnsampledSpan"]

logger = logging.getLogger(__name__)

_PLAIN = frozenset({str, bool, int, float})
_UNSET = Status(StatusCode.UNSET)


class UnsampledSpan(NonRecordingSpan):
    """A span nobody records: its trace's ``traceparent`` parts, its own ids when asked.

    ``trace`` is the trace id: an int (a trace started here) or the
    lower-case hex a caller's ``traceparent`` carried. ``flags`` are the
    span's trace flags, ``suffix`` their ``-<flags>`` in ``traceparent``,
    ``state`` the ``tracestate`` header (None: none; ``trace_state`` its
    parsed form, if at hand). The mesh only ever needs ``prefix``
    (``00-<trace id>-``, formatted once per trace) and ``suffix`` to write a
    child's headers, so the span's own id and its `SpanContext` are made
    when somebody first asks for them (``get_span_context``).
    """

    def __init__(
        self,
        trace: int | str,
        flags: TraceFlags,
        suffix: str,
        state: str | None,
        trace_state: TraceState | None = None,
        prefix: str | None = None,
    ) -> None:
        self._trace = trace
        self._flags = flags
        self.suffix = suffix
        self.state = state
        self._trace_state = trace_state
        self._prefix = prefix
        self._own: SpanContext | None = None

    @property
    def prefix(self) -> str:
        found = self._prefix
        if found is None:
            trace = self._trace
            found = self._prefix = f"00-{trace:032x}-" if isinstance(trace, int) else f"00-{trace}-"
        return found

    def get_span_context(self) -> SpanContext:
        own = self._own
        if own is None:
            trace = self._trace
            trace_id = trace if isinstance(trace, int) else int(trace, 16)
            state = self._trace_state
            if state is None and self.state is not None:
                state = self._trace_state = TraceState.from_header([self.state])
            own = self._own = span_context(trace_id, int(span_hex(), 16), False, self._flags, state)
        return own

    @classmethod
    def of_caller(cls, traceparent: str) -> UnsampledSpan:
        """The span of a request whose caller's ``traceparent`` says "not sampled", unparsed.

        For a request with ``tracestate`` none and a version-00 header whose
        flags say "not sampled" (`w3c.EVEN`): the header is kept as
        it came, and read (`_follow`) the first time a field of the span is
        (its prefix for a child's headers, its ids); a block that calls
        nobody never reads it. A header that turns out malformed is taken at
        its word on sampling: the span is the root of a new trace, not
        recorded (W3C restarts the trace; the decision is the receiver's).
        """
        span = object.__new__(cls)
        span.__dict__["_caller"] = traceparent
        return span

    if not TYPE_CHECKING:  # for the checker, every field is set by __init__

        def __getattr__(self, name: str) -> object:
            """Only ever reached by a span from `of_caller`, for a field it has not read yet."""
            caller = self.__dict__.pop("_caller", None)
            if caller is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            self._follow(caller)
            return getattr(self, name)

    def _follow(self, traceparent: str) -> None:
        """Become the unsampled child of ``traceparent``'s span (a new trace, if malformed)."""
        parts = caller_parts(traceparent)
        if parts is None:
            UnsampledSpan.__init__(self, trace_hex(), NEW_UNSAMPLED, NEW_UNSAMPLED_SUFFIX, None)
            return
        trace, _, flags = parts
        _, child_flags, suffix = FLAGS[flags]
        assert suffix is not None  # `Tracing.server_span` saw "not sampled" in them
        UnsampledSpan.__init__(self, trace, child_flags, suffix, None, None, f"00-{trace}-")

    def child(self) -> UnsampledSpan:
        """A span of the same trace and decision under this one (its id drawn when asked)."""
        return UnsampledSpan(
            self._trace, self._flags, self.suffix, self.state, self._trace_state, self.prefix
        )

    def __repr__(self) -> str:
        return f"UnsampledSpan({self.get_span_context()!r})"


class SpanSink:
    """Where ended `RecordedSpan` go, with what every one of them shares."""

    def __init__(
        self,
        processor: SpanProcessor,
        resource: Resource,
        scope: InstrumentationScope,
        limits: SpanLimits,
        info: InstrumentationInfo | None = None,
    ) -> None:
        self.processor = processor
        self.resource = resource
        self.scope = scope
        self.info = info
        """The SDK tracer's deprecated `InstrumentationInfo`, for exporters that still read it."""
        self.limits = limits
        found = limits.max_span_attributes
        self.max_attributes = found if found is not None else sys.maxsize
        self.plain = limits.max_span_attribute_length is None
        """Plain values can be stored as given: no length limit to apply."""


class RecordedSpan(Span, ReadableSpan):
    """A sampled span: plain fields while it runs, handed itself to the processor at its end.

    As the SDK's own span (``class Span(trace_api.Span, ReadableSpan)``), it
    is the `ReadableSpan` exporters read, with the fields under the names
    `ReadableSpan` reads them from: no copy is made when it ends. It refuses
    every change once ended, so the exporter's thread reads a span nobody
    writes any more.
    """

    def __init__(
        self,
        sink: SpanSink,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
    ) -> None:
        self._sink = sink
        self._name = name
        self._context: SpanContext = context
        self._parent = parent
        self._kind = kind
        self._resource = sink.resource
        self._instrumentation_scope = sink.scope
        self._instrumentation_info = sink.info
        self._attributes: dict[str, types.AttributeValue] | BoundedAttributes = {}
        self._events: Sequence[Event] = ()
        self._links: Sequence[Link] = ()
        self._status = _UNSET
        self._start_time: int | None = time_ns()
        self._end_time: int | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._ended("Setting attribute on ended span."):
            return
        attributes = self._attributes
        if (
            type(attributes) is dict
            and type(value) in _PLAIN
            and self._sink.plain
            and type(key) is str
            and key
            and (key in attributes or len(attributes) < self._sink.max_attributes)
        ):
            attributes[key] = value
        else:
            self._bounded()[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        mine = self._attributes
        if (
            type(mine) is dict
            and self._end_time is None
            and self._sink.plain
            and len(mine) + len(attributes) <= self._sink.max_attributes
        ):
            for key, value in attributes.items():
                if type(value) not in _PLAIN or type(key) is not str or not key:
                    break
            else:
                mine.update(attributes)  # the mesh's own attributes: all plain
                return
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def _bounded(self) -> BoundedAttributes:
        """The attributes as the SDK's span keeps them (from the first value that needs it)."""
        if type(self._attributes) is dict:
            limits = self._sink.limits
            self._attributes = BoundedAttributes(
                limits.max_span_attributes,
                self._attributes,
                immutable=False,
                max_value_len=limits.max_span_attribute_length,
            )
        return self._attributes  # type: ignore[return-value]  # a BoundedAttributes now

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._ended("Calling add_event on an ended span."):
            return
        limits = self._sink.limits
        events = self._events
        if not isinstance(events, BoundedList):
            events = self._events = BoundedList(limits.max_events)
        events.append(Event(name, self._frozen(limits.max_event_attributes, attributes), timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._ended("Calling add_link on an ended span."):
            return
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        limits = self._sink.limits
        links = self._links
        if not isinstance(links, BoundedList):
            links = self._links = BoundedList(limits.max_links)
        links.append(Link(context, self._frozen(limits.max_link_attributes, attributes)))

    def _frozen(self, limit: int | None, attributes: types.Attributes) -> BoundedAttributes:
        """An event's or a link's attributes, checked and bounded as the SDK's span does."""
        max_len = self._sink.limits.max_attribute_length
        return BoundedAttributes(limit, attributes, max_value_len=max_len, immutable=True)

    def _ended(self, warning: str) -> bool:
        """True, and the SDK's warning logged, when the span has ended already."""
        if self._end_time is None:
            return False
        logger.warning(warning)
        return True

    def update_name(self, name: str) -> None:
        if self._ended("Calling update_name on an ended span."):
            return
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's span: an OK status is final, UNSET is ignored."""
        if self._ended("Calling set_status on an ended span."):
            return
        if self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                logger.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event with the SDK's attributes (type, message, stack trace)."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        found: dict[str, types.AttributeValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            found.update(attributes)
        self.add_event("exception", found, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._ended("Calling end() on an ended span."):
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._sink.processor.on_end(self)
