"""Speech errors: bad audio is the caller's (or the recorder's) fault, a bad model is ours."""

from __future__ import annotations


class SpeechError(Exception):
    """Audio that cannot be transcribed: not a WAV, wrong format, empty, too long..."""


class SpeechModelMissing(SpeechError):
    """The configured Vosk model folder is missing, empty or unreadable.

    Raised once at load time with one line naming the path and what is wrong, so that
    ``serve`` and ``check-config`` can stop with a readable message.
    """
