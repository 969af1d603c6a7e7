"""What a simulated caller does during a FastAGI session: a script of inputs, in order.

``AgiCaller(inputs=["1", "", "say:sil:0.3,欠薪:0.8", "hangup"])``: each command that waits for
the caller (``GET DATA``, ``WAIT FOR DIGIT``, ``GET OPTION``, ``RECORD FILE``; ``STREAM FILE``
and ``CONTROL STREAM FILE`` only when the next input is a key among their escape digits) takes
the next input:

* keys (``"1"``, ``"21"``, ``"13800000000#"``; ``0-9 * # A-D``): the caller presses them.  A
  command takes what it can use (one key, or up to ``GET DATA``'s max digits, or up to ``#``)
  and the rest stays buffered for the next command, as DTMF typed ahead does on a channel, so
  ``"21"`` answers a main menu with 2 and the sub-menu after it with 1;
* ``""``: no input (the command's timeout result, as Asterisk gives it);
* ``"hangup"``: the caller hangs up during this command (``200 result=-1`` + ``HANGUP``, 06b);
* ``"say:<spec>"``: the caller speaks; ``RECORD FILE`` writes the audio of
  ``callcenter.pbxsim.audio.caller_audio_wav(spec)``; any other command hears no key.

When the inputs run out the caller presses nothing.  Without ``inputs`` the caller behaves as
it always did: every ``GET DATA`` gets :attr:`AgiCaller.digits`, nothing else gets a key, and
:attr:`AgiCaller.hang_up_during` names the command to hang up in.
"""

from __future__ import annotations

import importlib
import io
import re
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

__all__ = ["AgiCaller", "CallerInput", "ScriptError", "caller_audio", "parse_input"]

InputKind = Literal["keys", "silence", "hangup", "say"]
_KEYS = re.compile(r"[0-9*#A-D]+")
RATE = 8000


class ScriptError(ValueError):
    """A caller script that cannot be played (bad input text, bad audio spec)."""


@dataclass(frozen=True)
class CallerInput:
    """One parsed input: ``kind`` and its ``value`` (the keys, or the audio spec)."""

    kind: InputKind
    value: str = ""


SILENCE = CallerInput("silence")


def parse_input(text: str) -> CallerInput:
    """``"21"`` / ``""`` / ``"hangup"`` / ``"say:<spec>"`` -> :class:`CallerInput`."""
    if text == "":
        return SILENCE
    if text == "hangup":
        return CallerInput("hangup")
    if text.startswith("say:"):
        if not text[4:].strip():
            raise ScriptError("caller input 'say:' needs an audio spec, e.g. 'say:欠薪:0.8'")
        return CallerInput("say", text[4:])
    if _KEYS.fullmatch(text):
        return CallerInput("keys", text)
    raise ScriptError(
        f"caller input {text!r} is not keys (0-9 * # A-D), '', 'hangup' or 'say:<spec>'"
    )


@dataclass
class AgiCaller:
    """What the simulated caller does during one AGI session."""

    digits: str = "1"
    """Without ``inputs``: keys pressed at every GET DATA; empty: the caller presses nothing."""
    hang_up_during: str | None = None
    """Hang up while this command runs (e.g. ``GET DATA``); None: stay to the end."""
    inputs: Sequence[str] | None = None
    """The scripted inputs (see the module docstring); None: the ``digits`` behaviour."""
    _audio: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for item in self.script():
            if item.kind == "say" and item.value not in self._audio:
                self._audio[item.value] = caller_audio(item.value)

    def script(self) -> list[CallerInput]:
        """The parsed inputs (a fresh list: every session consumes its own copy)."""
        return [parse_input(text) for text in self.inputs or ()]

    def audio(self, spec: str) -> bytes:
        """The WAV the caller "says" for ``spec`` (made once, when the caller was built)."""
        if spec not in self._audio:
            self._audio[spec] = caller_audio(spec)
        return self._audio[spec]


def caller_audio(spec: str) -> bytes:
    """A complete 8 kHz mono 16-bit WAV for ``spec``, from :mod:`callcenter.pbxsim.audio`.

    Until that module exists the caller "says" silence of the spec's total length (tokens
    ``name:seconds``), so scripts and RECORD FILE work the same either way.
    """
    try:
        module = importlib.import_module("callcenter.pbxsim.audio")
    except ImportError:
        return silence_wav(_spec_seconds(spec))
    make = cast(Callable[[str], bytes], module.caller_audio_wav)
    try:
        return make(spec)
    except ValueError as exc:
        raise ScriptError(f"bad audio spec {spec!r}: {exc}") from exc


def _spec_seconds(spec: str) -> float:
    total = 0.0
    for token in spec.split(","):
        _, sep, seconds = token.strip().rpartition(":")
        try:
            value = float(seconds) if sep else -1.0
        except ValueError:
            value = -1.0
        if not 0 < value <= 600:
            raise ScriptError(f"bad audio spec {spec!r}: token {token.strip()!r}")
        total += value
    return total


def silence_wav(seconds: float, rate: int = RATE) -> bytes:
    """``seconds`` of digital silence as a WAV file (mono, 16-bit)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * round(seconds * rate))
    return out.getvalue()


def wav_frames(data: bytes) -> tuple[bytes, int]:
    """The PCM frames of a WAV file and its sample rate."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()
