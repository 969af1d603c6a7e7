from __future__ import annotations

import pytest

from callcenter.speech import Transcript, Word, spot_keywords

SERVICES = {
    "欠薪": "wage_arrears",
    "工资": "wage_arrears",
    "劳动": "labor",
    "劳动合同": "labor_contract",
    "离婚": "family",
    "交通事故": "traffic",
    "自杀": "emergency",
    "投诉": "complaint",
}


def _t(*words: tuple[str, float]) -> Transcript:
    return Transcript(tuple(Word(text, start, start + 0.4, 1.0) for text, start in words))


def test_given_two_keywords_when_spotting_then_the_first_in_time_wins() -> None:
    assert spot_keywords(_t(("离婚", 0.5), ("欠薪", 1.5)), SERVICES) == "family"
    # word order in the tuple does not matter, only time does
    assert spot_keywords(_t(("欠薪", 1.5), ("离婚", 0.5)), SERVICES) == "family"


def test_given_keyword_inside_a_longer_word_when_spotting_then_found() -> None:
    assert spot_keywords(_t(("老板", 0.1), ("拖欠工资", 0.6)), SERVICES) == "wage_arrears"


def test_given_keyword_split_over_two_words_when_spotting_then_found() -> None:
    assert spot_keywords(_t(("交通", 0.1), ("事故", 0.6)), SERVICES) == "traffic"


def test_given_nested_keywords_at_same_place_when_spotting_then_the_longer_wins() -> None:
    assert (
        spot_keywords(
            _t(
                ("劳动合同", 0.1),
            ),
            SERVICES,
        )
        == "labor_contract"
    )
    assert spot_keywords(_t(("劳动", 0.1), ("仲裁", 0.6)), SERVICES) == "labor"


def test_given_no_keyword_when_spotting_then_none() -> None:
    assert spot_keywords(_t(("你好", 0.0)), SERVICES) is None
    assert spot_keywords(Transcript(()), SERVICES) is None
    assert spot_keywords(_t(("[unk]", 0.0)), {"unk": "x"}) is None


def test_given_english_keywords_when_spotting_then_case_and_spacing_ignored() -> None:
    transcript = _t(("My", 0.0), ("TRAFFIC", 0.4), ("accident", 0.9))
    assert spot_keywords(transcript, {"traffic  accident": "traffic"}) == "traffic"


def test_given_empty_keyword_when_spotting_then_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        spot_keywords(_t(("欠薪", 0.0)), {" ": "x"})
