"""Loading a Vosk model once per process, with our own error messages.

A model is expensive (a real small model is ~50 MB and takes seconds), so every recognizer
of the process shares one ``vosk.Model`` per folder. Vosk itself only raises
``Exception("Failed to create a model")`` and logs the reason to stderr, so the folder is
checked first and the message names the path and what is wrong.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from callcenter.speech.errors import SpeechModelMissing

log = logging.getLogger(__name__)

_MODELS: dict[Path, Any] = {}
_LOCK = threading.Lock()

# Vosk accepts the current layout (am/final.mdl) and the old flat one (final.mdl).
_ACOUSTIC_MODELS = ("am/final.mdl", "final.mdl")


def _vosk() -> Any:
    try:
        import vosk
    except ImportError as exc:  # pragma: no cover - vosk is a declared dependency
        raise SpeechModelMissing(f"the vosk package is not installed ({exc})") from None
    vosk.SetLogLevel(-1)  # its INFO chatter goes to stderr; errors become our exceptions
    return vosk


def check_model_dir(path: Path) -> Path:
    """The resolved folder, or ``SpeechModelMissing`` saying what is wrong with it."""
    where = f"Vosk model {path}"
    if not path.exists():
        raise SpeechModelMissing(f"{where}: no such folder (check CALLCENTER_VOSK_MODEL_PATH)")
    if not path.is_dir():
        raise SpeechModelMissing(f"{where}: not a folder (point it at the unzipped model)")
    try:
        entries = list(path.iterdir())
    except PermissionError:
        raise SpeechModelMissing(f"{where}: permission denied") from None
    if not entries:
        raise SpeechModelMissing(f"{where}: the folder is empty (unzip the model into it)")
    if not any((path / name).is_file() for name in _ACOUSTIC_MODELS):
        raise SpeechModelMissing(
            f"{where}: no am/final.mdl, this is not a Vosk model folder "
            "(did you point at the folder that contains the model folder?)"
        )
    return path.resolve()


def load_model(path: Path) -> Any:
    """The shared ``vosk.Model`` of this folder, loaded on first use."""
    resolved = check_model_dir(path)
    with _LOCK:
        model = _MODELS.get(resolved)
        if model is None:
            vosk = _vosk()
            try:
                model = vosk.Model(str(resolved))
            except Exception as exc:
                raise SpeechModelMissing(
                    f"Vosk model {path}: unusable, its files are corrupt or incomplete "
                    f"(vosk: {exc}); download and unzip the model again"
                ) from None
            log.info("speech model loaded", extra={"model_path": str(resolved)})
            _MODELS[resolved] = model
        return model
