"""What a recognizer returns: words with times, independent of the engine."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One recognized word; ``start``/``end`` in seconds from the start of the audio."""

    text: str
    start: float
    end: float
    conf: float


def _is_cjk(char: str) -> bool:
    """Han, kana, hangul and fullwidth forms are written without spaces between words."""
    if not char:
        return False
    name = unicodedata.name(char, "")
    return name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "HANGUL", "FULLWIDTH", "IDEOGRAPHIC"))


def join_words(texts: list[str] | tuple[str, ...]) -> str:
    """Join words the way they are written: a space only between two non-CJK words."""
    out: list[str] = []
    for text in texts:
        if not text:
            continue
        if out and not (_is_cjk(out[-1][-1]) or _is_cjk(text[0])):
            out.append(" ")
        out.append(text)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Transcript:
    """Recognized words in time order (empty for silence)."""

    words: tuple[Word, ...] = ()

    @property
    def text(self) -> str:
        """The words as one string (``"欠薪自杀"``, ``"hello world"``)."""
        return join_words([w.text for w in self.words])

    @property
    def duration(self) -> float:
        """End of the last word (0.0 when nothing was recognized)."""
        return max((w.end for w in self.words), default=0.0)

    def __bool__(self) -> bool:
        return bool(self.words)
