"""Speech recognition real-time factor on 8 kHz call audio (prints a table).

Run: ``.venv/bin/python bench/bench_speech.py [--model DIR] [--seconds 60] [--repeat 7]``

Measured in the same run, for comparison:
- baseline: a bare ``vosk.KaldiRecognizer`` loop (read WAV chunks, ``AcceptWaveform``,
  ``Result``/``FinalResult``), on plain threads for the 2-way case;
- ours: ``VoskRecognizer.transcribe_file`` from asyncio (header checks, worker pool, result
  parsing), single and two transcriptions at once.
RTF = decode wall time / audio duration (lower is better; for 2-way it is the wall time of
the pair over the audio of one file, so 2 cores give about the single figure).
The default model is the synthetic tone model from shared/models: its figures measure the
plumbing's overhead, not what a real acoustic model costs (point --model at one for that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from callcenter.pbxsim.audio import caller_samples  # noqa: E402
from callcenter.speech import VoskRecognizer  # noqa: E402
from callcenter.speech.vosk_model import load_model  # noqa: E402

SHARED = REPO.parent / "shared"
CLIPS = sorted((SHARED / "audio").glob("*-8k.wav"))
TONES = "sil:0.5,欠薪:0.8,sil:0.6,noise:0.5,投诉:0.6,sil:0.7"


def call_audio(seconds: float) -> bytes:
    """8 kHz mono PCM: the real 8 kHz speech clips and keyword tones, repeated."""
    parts: list[bytes] = []
    tones = caller_samples(TONES, 8000).tobytes()
    total = 0
    while total < seconds * 8000 * 2:
        for clip in CLIPS:
            with wave.open(str(clip)) as w:
                parts.append(w.readframes(w.getnframes()))
            parts.append(tones)
        total = sum(len(p) for p in parts)
    return b"".join(parts)[: int(seconds * 8000) * 2]


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return path


def bare_vosk(model: Any, path: Path) -> list[str]:
    """The baseline: what one would write with vosk directly."""
    import vosk

    with wave.open(str(path)) as w:
        rec = vosk.KaldiRecognizer(model, w.getframerate())
        rec.SetWords(True)
        words: list[str] = []
        while data := w.readframes(4000):
            if rec.AcceptWaveform(data):
                words += [r["word"] for r in json.loads(rec.Result()).get("result", [])]
        words += [r["word"] for r in json.loads(rec.FinalResult()).get("result", [])]
    return words


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "vosk-tiny-tones")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per file")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pcm = call_audio(args.seconds)
        files = [write_wav(Path(tmp) / f"call-{i}.wav", pcm) for i in range(2)]
        import vosk  # noqa: F401 - imported before timing the model load

        started = time.perf_counter()
        model = load_model(args.model)
        load_s = time.perf_counter() - started
        recognizer = VoskRecognizer(args.model, max_concurrency=2)
        pool = ThreadPoolExecutor(2)

        def baseline_pair() -> list[list[str]]:
            return list(pool.map(lambda p: bare_vosk(model, p), files))

        def ours_one() -> list[str]:
            transcript = asyncio.run(recognizer.transcribe_file(files[0]))
            return [w.text for w in transcript.words]

        async def pair() -> list[list[str]]:
            got = await asyncio.gather(*(recognizer.transcribe_file(p) for p in files))
            return [[w.text for w in t.words] for t in got]

        bare_vosk(model, files[0])  # warm-up (page cache, first decoder set-up)
        rows = [
            ("bare vosk loop", "1", *timed(lambda: bare_vosk(model, files[0]), args.repeat)),
            ("VoskRecognizer", "1", *timed(ours_one, args.repeat)),
            ("bare vosk loop", "2", *timed(baseline_pair, args.repeat)),
            ("VoskRecognizer", "2", *timed(lambda: asyncio.run(pair()), args.repeat)),
        ]
        recognizer.close()
        pool.shutdown()

    reference = rows[0][3]
    print(f"model {args.model} (loaded once in {load_s * 1000:.1f} ms)")
    print(f"audio: {args.seconds:g} s of 8 kHz call audio per file, median of {args.repeat} runs")
    print(f"{'decoder':<16} {'streams':>7} {'wall ms':>9} {'RTF':>9} {'x realtime':>11}  words")
    for name, streams, wall, words in rows:
        rtf = wall / args.seconds
        same = words == reference or words == [reference, reference]
        print(
            f"{name:<16} {streams:>7} {wall * 1000:>9.1f} {rtf:>9.5f} {1 / rtf:>11.0f}  "
            f"{'same' if same else 'DIFFERENT'}"
        )


if __name__ == "__main__":
    main()
