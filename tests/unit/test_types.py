"""`Call`: immutable, and each copy for the layers changes exactly its own field."""

from __future__ import annotations

import pytest

from eblocks._types import Call, Endpoint
from eblocks.message import Message
from eblocks.spec.policies import Route

ENDPOINT = Endpoint("b", "b-0", "10.0.0.1", 80)
ROUTE = Route(name="r", to="b")


def test_a_call_cannot_be_changed_in_place() -> None:
    call = Call("b", Message(b"x"))
    with pytest.raises(AttributeError):
        call.deadline = 1.0  # type: ignore[misc]
    assert (call.deadline, call.endpoint, call.attempt, call.route, call.subset) == (
        None,
        None,
        1,
        None,
        None,
    )


def test_each_copy_changes_its_field_and_keeps_the_others() -> None:
    message = Message(b"x")
    call = Call("b", message, 5.0, ENDPOINT, 2, ROUTE, {"v": "1"})
    assert call.with_deadline(3.0) == Call("b", message, 3.0, ENDPOINT, 2, ROUTE, {"v": "1"})
    other = Endpoint("b", "b-1", "10.0.0.2", 80)
    assert call.with_endpoint(other) == Call("b", message, 5.0, other, 2, ROUTE, {"v": "1"})
    assert call.with_attempt(3) == Call("b", message, 5.0, ENDPOINT, 3, ROUTE, {"v": "1"})
    assert all(type(c) is Call for c in (call.with_deadline(1.0), call.with_attempt(1)))


def test_a_routed_copy_drops_the_endpoint_and_an_empty_subset() -> None:
    call = Call("b", Message(b"x"), 5.0, ENDPOINT, 2)
    routed = call.with_route(ROUTE, "c", {}, Message(b"y"))
    assert routed == Call("c", Message(b"y"), 5.0, None, 2, ROUTE, None)
