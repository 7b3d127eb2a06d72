"""Publisher-confirm bookkeeping of TwistedChannel: multiple acks, out-of-order acks, nacks and
returns matched to the publish they belong to (no broker: frames are built here)."""

from __future__ import annotations

from typing import Any

from amqp_adapter_twisted.channel import _Confirms
from amqp_adapter_twisted.queue import ReceivedMessage
from amqp_core import frame, spec
from amqp_core.exceptions import NackError, UnroutableError


def outcome(deferred: Any) -> Any:
    """What ``deferred`` fired with so far ("pending" if nothing), leaving its result alone."""
    box: list[Any] = []

    def seen(result: Any) -> Any:
        box.append(result)
        return result

    deferred.addBoth(seen)
    if box and hasattr(box[0], "check"):
        deferred.addErrback(lambda _failure: None)  # looked at: not an unhandled error
    return box[0] if box else "pending"


def ack(tag: int, multiple: bool = False) -> frame.Method:
    return frame.Method(1, spec.Basic.Ack(delivery_tag=tag, multiple=multiple))


def nack(tag: int, multiple: bool = False) -> frame.Method:
    return frame.Method(1, spec.Basic.Nack(delivery_tag=tag, multiple=multiple))


def test_multiple_ack_settles_every_tag_up_to_it() -> None:
    confirms = _Confirms()
    published = [confirms.track("", "q", b"m", False) for _ in range(5)]
    confirms.on_ack_nack(ack(3, multiple=True))
    assert [isinstance(outcome(d), spec.Basic.Ack) for d in published] == [
        True, True, True, False, False]
    confirms.on_ack_nack(ack(5))
    confirms.on_ack_nack(ack(4))
    assert all(isinstance(outcome(d), spec.Basic.Ack) for d in published)
    assert not confirms.pending


def test_nack_multiple_fails_with_nack_error() -> None:
    confirms = _Confirms()
    published = [confirms.track("", "q", b"m", False) for _ in range(3)]
    confirms.on_ack_nack(ack(1))
    confirms.on_ack_nack(nack(3, multiple=True))
    assert isinstance(outcome(published[0]), spec.Basic.Ack)
    assert all(outcome(d).check(NackError) for d in published[1:])


def test_return_is_matched_to_its_mandatory_publish() -> None:
    confirms = _Confirms()
    routed = confirms.track("", "here", b"a", True)
    lost = confirms.track("", "nowhere", b"b", True)
    plain = confirms.track("", "nowhere", b"b", False)
    returned = ReceivedMessage(
        None, spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="",
                                routing_key="nowhere"),
        spec.BasicProperties(), b"b",
    )
    confirms.returned.append(returned)
    confirms.on_ack_nack(ack(3, multiple=True))
    assert isinstance(outcome(routed), spec.Basic.Ack)
    failure = outcome(lost)
    assert failure.check(UnroutableError) and failure.value.messages == [returned]
    assert isinstance(outcome(plain), spec.Basic.Ack)
    assert not confirms.returned


def test_cancelled_publish_is_skipped_and_fail_all() -> None:
    confirms = _Confirms()
    first, second, third = (confirms.track("", "q", b"m", False) for _ in range(3))
    first.cancel()
    outcome(first)
    confirms.on_ack_nack(ack(2, multiple=True))
    assert isinstance(outcome(second), spec.Basic.Ack)
    error = RuntimeError("channel closed")
    confirms.fail_all(error)
    assert outcome(third).value is error
