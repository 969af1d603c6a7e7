"""Speech fixtures: the real ``vosk`` library on the tiny synthetic models in shared/models.

The tone model hears 800/1200/1600/2000 Hz as 欠薪/离婚/自杀/投诉 and other sound as 你好, so
tests know exactly which words (and when) a file must give.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callcenter.pbxsim.audio import caller_audio_wav
from callcenter.speech import VoskRecognizer


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def tones_model(models_dir: Path) -> Path:
    return models_dir / "vosk-tiny-tones"


@pytest.fixture(scope="session")
def audio_dir(shared_dir: Path) -> Path:
    return shared_dir / "audio"


@pytest.fixture(scope="session")
def recognizer(tones_model: Path) -> Iterator[VoskRecognizer]:
    """One recognizer (and one loaded model) for the whole run."""
    rec = VoskRecognizer(tones_model, max_concurrency=2, max_audio_seconds=120.0)
    yield rec
    rec.close()


def wav_bytes(frames: bytes, *, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


@pytest.fixture
def caller_wav(tmp_path: Path) -> Callable[..., Path]:
    """Write ``caller_audio_wav(spec, rate)`` to a file, as Asterisk's RECORD FILE would."""
    counter = iter(range(10_000))

    def write(spec: str, rate: int = 8000, level_dbfs: float = -20.0) -> Path:
        path = tmp_path / f"caller-{next(counter)}-{rate}.wav"
        path.write_bytes(caller_audio_wav(spec, rate, level_dbfs))
        return path

    return write
