"""What the simulated caller "says": test audio for speech menus, as a WAV file.

The tone model in ``shared/models/vosk-tiny-tones`` hears a pure tone as a keyword, so a
simulated caller says 欠薪 by playing 800 Hz. A spec lists segments in order, e.g.
``"sil:0.5,欠薪:0.8,sil:0.3,noise:0.5"``. Output matches that model's generator
(5 ms raised-cosine fades, noise at -60 dBFS RMS, deterministic) so tests and the simulator
agree on what is heard.
"""

from __future__ import annotations

import io
import math
import random
import re
import sys
import wave
from array import array
from dataclasses import dataclass

TONE_WORDS: dict[str, float] = {"欠薪": 800.0, "离婚": 1200.0, "自杀": 1600.0, "投诉": 2000.0}
"""Keyword -> tone frequency understood by the ``vosk-tiny-tones`` model."""

NOISE_DBFS = -60.0
RAMP_SECONDS = 0.005
MAX_SECONDS = 600.0
"""Longest spec accepted; anything longer is a mistake, not a caller."""

_HZ = re.compile(r"^(\d+(?:\.\d+)?)(?:\+(\d+(?:\.\d+)?))?hz$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str  # "sil", "noise" or "tone"
    freqs: tuple[float, ...]
    seconds: float


def _token_error(token: str, why: str) -> ValueError:
    return ValueError(f"bad audio spec token {token!r}: {why}")


def _parse_token(token: str, rate: int) -> Segment:
    name, sep, secs_text = token.strip().rpartition(":")
    if not sep or not name.strip():
        raise _token_error(token, "expected NAME:SECONDS, e.g. 欠薪:0.8 or sil:0.5")
    try:
        seconds = float(secs_text)
    except ValueError:
        raise _token_error(token, f"{secs_text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise _token_error(token, f"seconds must be in (0, {MAX_SECONDS:g}]")
    name = name.strip()
    if name in ("sil", "silence"):
        return Segment("sil", (), seconds)
    if name == "noise":
        return Segment("noise", (), seconds)
    if name in TONE_WORDS:
        return Segment("tone", (TONE_WORDS[name],), seconds)
    match = _HZ.match(name)
    if match is None:
        words = ", ".join(TONE_WORDS)
        raise _token_error(token, f"use sil, noise, NNNhz, AAA+BBBhz or one of {words}")
    freqs = tuple(float(f) for f in match.groups() if f is not None)
    for hz in freqs:
        if not 20 <= hz < rate / 2:
            raise _token_error(token, f"{hz:g} Hz is outside 20..{rate // 2} Hz at {rate} Hz")
    return Segment("tone", freqs, seconds)


def parse_spec(spec: str, rate: int = 8000) -> list[Segment]:
    """Segments of a comma-separated spec; ``ValueError`` names the first bad token."""
    if not spec.strip():
        raise ValueError("empty audio spec (expected e.g. 'sil:0.5,欠薪:0.8')")
    segments = [_parse_token(token, rate) for token in spec.split(",")]
    total = sum(s.seconds for s in segments)
    if total > MAX_SECONDS:
        raise ValueError(f"audio spec is {total:g} s long, at most {MAX_SECONDS:g} s")
    return segments


def _tone(samples: array[int], freqs: tuple[float, ...], n: int, rate: int, amp: float) -> None:
    ramp = max(1, round(RAMP_SECONDS * rate))
    a = amp / len(freqs)  # the sum of several sines never exceeds the requested peak
    steps = [2 * math.pi * f / rate for f in freqs]
    for i in range(n):
        edge = min(i, n - 1 - i)
        gain = 1.0 if edge >= ramp else 0.5 - 0.5 * math.cos(math.pi * (edge + 0.5) / ramp)
        value = round(gain * a * sum(math.sin(step * i) for step in steps))
        samples.append(max(-32768, min(32767, value)))


def caller_samples(spec: str, rate: int = 8000, level_dbfs: float = -20.0) -> array[int]:
    """Signed 16-bit mono samples of ``spec`` (see ``caller_audio_wav``)."""
    if rate not in (8000, 16000):
        raise ValueError(f"rate must be 8000 or 16000 Hz, got {rate}")
    if not (math.isfinite(level_dbfs) and -96.0 <= level_dbfs <= 0.0):
        raise ValueError(f"level_dbfs must be in [-96, 0], got {level_dbfs}")
    amp = 32767 * 10 ** (level_dbfs / 20)
    noise_rms = 32768 * 10 ** (NOISE_DBFS / 20)
    rng = random.Random(12348)  # noqa: S311 - reproducible test noise, not a secret
    samples: array[int] = array("h")
    for seg in parse_spec(spec, rate):
        n = round(seg.seconds * rate)
        if seg.kind == "sil":
            samples.extend(array("h", bytes(2 * n)))
        elif seg.kind == "noise":
            samples.extend(
                max(-32768, min(32767, round(rng.gauss(0.0, noise_rms)))) for _ in range(n)
            )
        else:
            _tone(samples, seg.freqs, n, rate, amp)
    return samples


def caller_audio_wav(spec: str, rate: int = 8000, level_dbfs: float = -20.0) -> bytes:
    """A complete mono 16-bit WAV file of ``spec`` at ``rate`` (8000 or 16000 Hz).

    Tokens, comma separated, each ``NAME:SECONDS``: ``sil`` (digital silence), ``noise``
    (-60 dBFS), a tone word (欠薪 800 Hz, 离婚 1200 Hz, 自杀 1600 Hz, 投诉 2000 Hz),
    ``NNNhz`` (any tone) or ``AAA+BBBhz`` (two at once, e.g. DTMF ``697+1209hz``).
    ``level_dbfs`` is the peak level of tones. A bad spec raises ``ValueError`` naming the
    token.
    """
    samples = caller_samples(spec, rate, level_dbfs)
    if samples.itemsize != 2:  # pragma: no cover - 'h' is 16-bit on every CPython platform
        raise RuntimeError("array('h') is not 16-bit here")
    if sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return buf.getvalue()
