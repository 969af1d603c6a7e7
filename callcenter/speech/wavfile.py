"""Checking and reading the audio we accept: mono 16-bit PCM WAV at 8 or 16 kHz.

Asterisk's ``wav`` format (``RECORD FILE ... wav``, MixMonitor ``.wav``) is 8 kHz 16-bit mono;
wideband endpoints give 16 kHz. Everything else is refused with a message saying what was
found, rather than decoded into nonsense.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callcenter.speech.errors import SpeechError

SUPPORTED_RATES = (8000, 16000)
SAMPLE_WIDTH = 2


@dataclass(frozen=True, slots=True)
class AudioInfo:
    rate: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def check_rate(rate: int) -> None:
    if rate not in SUPPORTED_RATES:
        raise SpeechError(f"unsupported sample rate {rate} Hz (expected 8000 or 16000 Hz)")


def check_duration(seconds: float, max_seconds: float, what: str) -> None:
    if seconds > max_seconds:
        raise SpeechError(f"{what}: audio too long ({seconds:.1f} s, at most {max_seconds:g} s)")


def check_pcm(pcm: bytes, rate: int, max_seconds: float) -> AudioInfo:
    """Validate raw signed 16-bit little-endian mono PCM."""
    check_rate(rate)
    if not pcm:
        raise SpeechError("no audio (0 bytes of PCM)")
    if len(pcm) % SAMPLE_WIDTH:
        raise SpeechError(f"PCM length {len(pcm)} is odd: expected 16-bit samples")
    info = AudioInfo(rate, len(pcm) // SAMPLE_WIDTH)
    check_duration(info.seconds, max_seconds, "PCM")
    return info


def _open(path: Path) -> wave.Wave_read:
    try:
        return wave.open(str(path), "rb")
    except FileNotFoundError:
        raise SpeechError(f"{path}: no such audio file") from None
    except IsADirectoryError:
        raise SpeechError(f"{path}: is a directory, not an audio file") from None
    except PermissionError:
        raise SpeechError(f"{path}: permission denied") from None
    except (wave.Error, EOFError) as exc:
        raise SpeechError(f"{path}: not a PCM WAV file ({_describe(exc)})") from None


_FORMATS = {
    3: "32-bit float",
    6: "A-law",
    7: "mu-law",
    49: "GSM (Asterisk wav49)",
    65534: "WAVE_FORMAT_EXTENSIBLE",
}


def _describe(exc: Exception) -> str:
    """Name the encoding when ``wave`` only says ``unknown format: 7``."""
    text = str(exc)
    code = text.removeprefix("unknown format: ")
    if code != text and code.isdigit():
        kind = _FORMATS.get(int(code), f"format code {code}")
        return f"{kind} encoding; convert to 16-bit PCM, e.g. sox IN -b 16 -e signed OUT.wav"
    return text or "truncated header"


def _check_header(path: Path, wav: wave.Wave_read, max_seconds: float) -> AudioInfo:
    channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
    if channels != 1:
        raise SpeechError(f"{path}: {channels} channels, expected mono (split channels first)")
    if width != SAMPLE_WIDTH:
        raise SpeechError(f"{path}: {8 * width}-bit samples, expected 16-bit PCM")
    try:
        check_rate(rate)
    except SpeechError as exc:
        raise SpeechError(f"{path}: {exc}") from None
    info = AudioInfo(rate, wav.getnframes())
    if info.frames == 0:
        raise SpeechError(f"{path}: no audio (0 samples)")
    check_duration(info.seconds, max_seconds, str(path))
    return info


def read_wav_chunks(
    path: Path, max_seconds: float, chunk_seconds: float = 0.5
) -> tuple[AudioInfo, Iterator[bytes]]:
    """Validate the header, then stream the samples (blocking; call from a worker thread).

    Streaming keeps memory flat for long call recordings; ``wave`` never reads past the
    length the header declares, so the duration checked up front is the one decoded.
    """
    wav = _open(path)
    try:
        info = _check_header(path, wav, max_seconds)
    except BaseException:
        wav.close()
        raise

    def chunks() -> Iterator[bytes]:
        step = max(1, int(chunk_seconds * info.rate))
        read = 0
        with wav:
            while data := wav.readframes(step):
                read += len(data)
                yield data
        if read == 0:
            raise SpeechError(f"{path}: no audio (the header promises samples, the file has none)")

    return info, chunks()
