"""Building the configured recognizer from settings (the composition root calls this)."""

from __future__ import annotations

from callcenter.settings import Settings
from callcenter.speech.errors import SpeechModelMissing
from callcenter.speech.recognizer import Recognizer
from callcenter.speech.vosk_model import load_model
from callcenter.speech.vosk_recognizer import VoskRecognizer


def load_recognizer(settings: Settings) -> Recognizer | None:
    """The Vosk recognizer, or ``None`` when no model is configured (speech menus then fall
    back to DTMF). A configured but unusable model raises ``SpeechModelMissing`` right away,
    so the problem shows at start rather than on the first caller."""
    if settings.vosk_model_path is None:
        return None
    return VoskRecognizer(
        settings.vosk_model_path,
        max_concurrency=settings.speech_max_concurrency,
        max_audio_seconds=settings.speech_max_audio_seconds,
    )


def model_status(settings: Settings) -> tuple[bool, str]:
    """``(usable, one line)`` for ``check-config``: loaded / not configured / unusable."""
    if settings.vosk_model_path is None:
        return True, "not configured (CALLCENTER_VOSK_MODEL_PATH unset: speech menus use DTMF)"
    try:
        load_model(settings.vosk_model_path)
    except SpeechModelMissing as exc:
        return False, f"unusable: {exc}"
    return True, f"loaded ({settings.vosk_model_path})"
