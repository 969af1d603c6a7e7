from __future__ import annotations

from callcenter.speech import Transcript, Word


def _t(*texts: str) -> Transcript:
    return Transcript(tuple(Word(t, i, i + 0.5, 1.0) for i, t in enumerate(texts)))


def test_given_chinese_words_when_joining_then_no_spaces() -> None:
    assert _t("我", "要", "投诉").text == "我要投诉"


def test_given_english_words_when_joining_then_spaces() -> None:
    assert _t("hello", "world").text == "hello world"


def test_given_mixed_words_when_joining_then_space_only_between_latin_words() -> None:
    assert _t("我", "用", "wifi", "wifi", "上网").text == "我用wifi wifi上网"


def test_given_no_words_when_reading_then_empty_text_and_falsy() -> None:
    empty = Transcript(())
    assert empty.text == "" and not empty and empty.duration == 0.0
    assert _t("你好").duration == 0.5
