"""Speech recognition behind one small interface (IVR speech menus, call transcription).

Code against ``Recognizer``; build it with ``load_recognizer(settings)``. ``VoskRecognizer``
is the implementation; audio is mono 16-bit PCM WAV at 8 or 16 kHz.
"""

from callcenter.speech.errors import SpeechError, SpeechModelMissing
from callcenter.speech.keywords import spot_keywords
from callcenter.speech.loader import load_recognizer
from callcenter.speech.recognizer import Recognizer
from callcenter.speech.transcript import Transcript, Word
from callcenter.speech.vosk_recognizer import VoskRecognizer

__all__ = [
    "Recognizer",
    "SpeechError",
    "SpeechModelMissing",
    "Transcript",
    "VoskRecognizer",
    "Word",
    "load_recognizer",
    "spot_keywords",
]
