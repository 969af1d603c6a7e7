"""The recognizer interface every part of the platform codes against (IVR, transcription)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from callcenter.speech.transcript import Transcript


@runtime_checkable
class Recognizer(Protocol):
    """Speech to words. Implementations run decoding off the event loop.

    ``grammar`` restricts the vocabulary when the model supports it (real Vosk small models
    do); it is a hint, so callers must still check the words they get back.
    Both methods raise ``SpeechError`` for audio they cannot use.
    """

    async def transcribe_file(
        self, path: Path, *, grammar: Sequence[str] | None = None
    ) -> Transcript: ...

    async def transcribe_pcm(
        self, pcm: bytes, rate: int, *, grammar: Sequence[str] | None = None
    ) -> Transcript: ...

    def close(self) -> None:
        """Refuse new work and let the decoding threads go (at shutdown)."""
