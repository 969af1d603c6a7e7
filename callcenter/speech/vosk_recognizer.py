"""The Vosk implementation of ``Recognizer``.

Decoding is CPU-bound and vosk's C calls release the GIL, so it runs on a small thread pool
of its own: the event loop never blocks, concurrency is bounded by the pool size (excess
requests queue), and one busy speech menu cannot starve ``asyncio.to_thread`` users.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from callcenter.speech.errors import SpeechError
from callcenter.speech.transcript import Transcript, Word
from callcenter.speech.vosk_model import load_model
from callcenter.speech.wavfile import SAMPLE_WIDTH, check_pcm, read_wav_chunks

log = logging.getLogger(__name__)

UNKNOWN = "[unk]"
"""Vosk's out-of-grammar word. Added to every grammar so that speech outside it is heard as
unknown instead of being forced onto the closest keyword; dropped from transcripts."""

CHUNK_SECONDS = 0.5


def grammar_json(grammar: Sequence[str] | None) -> str | None:
    """The grammar as Vosk wants it (a JSON list), with ``[unk]`` added."""
    if grammar is None:
        return None
    if isinstance(grammar, str):
        raise TypeError("grammar must be a sequence of phrases, not one string")
    phrases = [" ".join(str(p).split()) for p in grammar]
    if not phrases or not all(phrases):
        raise ValueError("grammar must list at least one non-empty phrase")
    if UNKNOWN not in phrases:
        phrases.append(UNKNOWN)
    return json.dumps(phrases, ensure_ascii=False)


def _words(result_json: str) -> Iterable[Word]:
    for item in json.loads(result_json).get("result", ()):
        if item["word"] == UNKNOWN:
            continue
        yield Word(
            text=item["word"],
            start=float(item["start"]),
            end=float(item["end"]),
            conf=float(item.get("conf", 1.0)),
        )


class VoskRecognizer:
    """Recognizer over one shared ``vosk.Model``; safe to use from many tasks at once."""

    def __init__(
        self,
        model_path: Path,
        *,
        max_concurrency: int = 2,
        max_audio_seconds: float = 4 * 3600.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_audio_seconds <= 0:
            raise ValueError("max_audio_seconds must be positive")
        self.model_path = model_path
        self.max_concurrency = max_concurrency
        self.max_audio_seconds = max_audio_seconds
        self._model = load_model(model_path)
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="vosk")
        self._closed = False

    async def transcribe_file(
        self, path: Path, *, grammar: Sequence[str] | None = None
    ) -> Transcript:
        spec = grammar_json(grammar)
        return await self._run(self._decode_file, Path(path), spec)

    async def transcribe_pcm(
        self, pcm: bytes, rate: int, *, grammar: Sequence[str] | None = None
    ) -> Transcript:
        spec = grammar_json(grammar)
        check_pcm(pcm, rate, self.max_audio_seconds)
        return await self._run(self._decode_pcm, bytes(pcm), rate, spec)

    def close(self) -> None:
        """Refuse new work; decodes already accepted still finish (the model stays cached)."""
        self._closed = True
        self._executor.shutdown(wait=False)

    async def _run(self, fn: Any, *args: Any) -> Transcript:
        if self._closed:
            raise SpeechError("the speech recognizer is closed")
        loop = asyncio.get_running_loop()
        result: Transcript = await loop.run_in_executor(self._executor, fn, *args)
        return result

    def _decode_file(self, path: Path, spec: str | None) -> Transcript:
        started = time.perf_counter()
        info, chunks = read_wav_chunks(path, self.max_audio_seconds, CHUNK_SECONDS)
        transcript = self._decode(chunks, info.rate, spec)
        # Never the words themselves: callers talk about their legal troubles.
        log.debug(
            "transcribed %s: %.2f s of audio in %.3f s, %d words",
            path.name,
            info.seconds,
            time.perf_counter() - started,
            len(transcript.words),
        )
        return transcript

    def _decode_pcm(self, pcm: bytes, rate: int, spec: str | None) -> Transcript:
        step = int(CHUNK_SECONDS * rate) * SAMPLE_WIDTH
        return self._decode((pcm[i : i + step] for i in range(0, len(pcm), step)), rate, spec)

    def _decode(self, chunks: Iterable[bytes], rate: int, spec: str | None) -> Transcript:
        """Feed every chunk; endpointing splits the words over several ``Result()`` calls."""
        import vosk

        args: tuple[Any, ...] = (self._model, rate) if spec is None else (self._model, rate, spec)
        try:
            rec = vosk.KaldiRecognizer(*args)
        except Exception as exc:  # vosk raises a bare Exception when libvosk returns NULL
            raise SpeechError(f"vosk could not start a recognizer at {rate} Hz ({exc})") from None
        rec.SetWords(True)
        words: list[Word] = []
        for chunk in chunks:
            if rec.AcceptWaveform(chunk):
                words.extend(_words(rec.Result()))
        words.extend(_words(rec.FinalResult()))
        words.sort(key=lambda w: (w.start, w.end))
        return Transcript(tuple(words))
