"""Recordings of simulated calls: real speech clips written where MixMonitor would put them.

The speech pipeline downstream (Vosk transcription, keyword alerts) needs audio files that
look like Asterisk's: mono 16-bit PCM WAV named ``<caller Uniqueid>.wav``.  The simulator
copies one of the shared clips (``shared/audio/*.wav``, 8 or 16 kHz), trimmed to the talk
time, into the recordings directory.  Without clips it writes silence, so the files still
exist and can be opened.  Files are written in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import wave
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Clip", "Recorder"]

_SILENCE_RATE = 8000
_MAX_SILENCE_S = 10.0


@dataclass(frozen=True)
class Clip:
    """A mono 16-bit clip held in memory (the shared clips are ~1.5 MB together)."""

    name: str
    rate: int
    frames: bytes

    @property
    def seconds(self) -> float:
        return len(self.frames) / 2 / self.rate


def load_clips(audio_dir: Path | None) -> list[Clip]:
    """Mono 16-bit WAV files of ``audio_dir`` in name order; other formats are skipped."""
    if audio_dir is None or not audio_dir.is_dir():
        return []
    clips = []
    for path in sorted(audio_dir.glob("*.wav")):
        with wave.open(str(path), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                continue
            clips.append(Clip(path.name, wav.getframerate(), wav.readframes(wav.getnframes())))
    return clips


class Recorder:
    """Writes ``<directory>/<uniqueid>.wav`` for answered calls."""

    def __init__(self, directory: Path, audio_dir: Path | None = None) -> None:
        self.directory = directory
        self.clips = load_clips(audio_dir)
        self.written: list[Path] = []

    def path_for(self, uniqueid: str) -> Path:
        return self.directory / f"{uniqueid}.wav"

    def clip_for(self, uniqueid: str) -> Clip | None:
        """Same call, same clip: chosen from a hash of the Uniqueid (no shared random state)."""
        if not self.clips:
            return None
        digest = hashlib.sha256(uniqueid.encode()).digest()
        return self.clips[digest[0] % len(self.clips)]

    async def record(self, uniqueid: str, seconds: float) -> Path:
        """Write the recording of a call that talked ``seconds``; returns its path."""
        path = self.path_for(uniqueid)
        await asyncio.to_thread(self._write, path, self.clip_for(uniqueid), seconds)
        self.written.append(path)
        return path

    def _write(self, path: Path, clip: Clip | None, seconds: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if clip is None:
            rate = _SILENCE_RATE
            frames = b"\0\0" * int(rate * min(seconds, _MAX_SILENCE_S))
        else:
            rate = clip.rate
            frames = clip.frames[: int(max(seconds, 0.1) * rate) * 2]
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(frames)
