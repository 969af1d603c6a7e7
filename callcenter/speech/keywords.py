"""Keyword spotting on a transcript (the IVR speech menu: 欠薪 → wage_arrears...)."""

from __future__ import annotations

from collections.abc import Mapping

from callcenter.speech.transcript import Transcript, join_words


def _normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


def spot_keywords(transcript: Transcript, keywords: Mapping[str, str]) -> str | None:
    """Value of the keyword said first, or ``None``.

    Real models glue words together ("拖欠工资") or split a keyword ("交通 事故"), so the
    keywords are searched in the joined text rather than compared word by word. When two
    keywords start at the same place the longer one wins ("劳动合同" before "劳动").
    """
    table: dict[str, str] = {}
    for keyword, value in keywords.items():
        norm = _normalize(keyword)
        if not norm:
            raise ValueError("keywords must not be empty")
        table.setdefault(norm, value)
    ordered = sorted(transcript.words, key=lambda w: (w.start, w.end))
    text = _normalize(join_words([w.text for w in ordered if w.text != "[unk]"]))
    best: tuple[int, int, str] | None = None
    for norm, value in table.items():
        pos = text.find(norm)
        if pos >= 0 and (best is None or (pos, -len(norm)) < (best[0], best[1])):
            best = (pos, -len(norm), value)
    return None if best is None else best[2]
