"""The normalizer's memories are bounded windows, and the event lookup shortcut changes nothing."""

from __future__ import annotations

from callcenter.ami.codec import Frame
from callcenter.ami.events import CallOffered
from callcenter.ami.normalize import DEFAULT_MEMORY, Normalizer
from tests.ami.test_normalize_traces import CALLER, channel_frame


def test_given_more_ended_channels_than_memory_then_only_the_newest_are_remembered() -> None:
    normalizer = Normalizer("n", memory=3)
    for i in range(1, 6):
        normalizer.feed(channel_frame("Newchannel", CALLER, f"1.{i}"))
        normalizer.feed(channel_frame("Hangup", CALLER, f"1.{i}"))
    normalizer.feed(channel_frame("Hangup", CALLER, "1.5"))
    normalizer.feed(channel_frame("Hangup", CALLER, "1.3"))
    assert (normalizer.stats.ended, normalizer.stats.untracked) == (2, 0)
    normalizer.feed(channel_frame("Hangup", CALLER, "1.2"))
    assert (normalizer.stats.ended, normalizer.stats.untracked) == (2, 1)
    normalizer.feed(channel_frame("Newchannel", CALLER, "1.4"))
    assert normalizer.active_calls == 0  # a replayed Newchannel inside the window stays ended


def test_default_memory_is_a_bounded_window() -> None:
    assert 1000 <= DEFAULT_MEMORY <= 100_000


def test_given_event_header_not_first_or_lower_case_then_handled_like_frame_get() -> None:
    normalizer = Normalizer("n")
    fields = channel_frame("Newchannel", CALLER, "1.1").items()
    normalizer.feed(Frame((fields[1], ("event", "Newchannel"), *fields[2:])))
    assert normalizer.active_calls == 1
    newexten = channel_frame("Newexten", CALLER, "1.1", "from-trunk", ("Application", "Answer"))
    [event] = normalizer.feed(Frame((*newexten.items()[1:], newexten.items()[0])))
    assert isinstance(event, CallOffered)


def test_given_smuggled_event_header_in_any_case_then_tampered() -> None:
    normalizer = Normalizer("n")
    normalizer.feed(channel_frame("Newchannel", CALLER, "1.1"))
    hangup = channel_frame("Hangup", CALLER, "1.1")
    assert normalizer.feed(Frame((*hangup.items(), ("EVENT", "FakeEvent")))) == []
    assert normalizer.stats.tampered == 1 and normalizer.active_calls == 1
