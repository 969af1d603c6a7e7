"""VoskRecognizer through the real vosk library on the tone model."""

from __future__ import annotations

import asyncio
import logging
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from callcenter.pbxsim.audio import caller_audio_wav
from callcenter.speech import Recognizer, SpeechError, Transcript, VoskRecognizer, spot_keywords
from tests.speech.conftest import wav_bytes

TONES = {"欠薪": 800, "离婚": 1200, "自杀": 1600, "投诉": 2000}
KEYWORDS = {"欠薪": "wage_arrears", "离婚": "family", "自杀": "emergency", "投诉": "complaint"}
TOLERANCE = 0.1


def _spans(transcript: Transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start, w.end) for w in transcript.words]


def _assert_words(transcript: Transcript, expected: list[tuple[str, float, float]]) -> None:
    got = _spans(transcript)
    assert [w for w, _, _ in got] == [w for w, _, _ in expected], got
    for (_, start, end), (_, want_start, want_end) in zip(got, expected, strict=True):
        assert abs(start - want_start) <= TOLERANCE, got
        assert abs(end - want_end) <= TOLERANCE, got


def test_given_vosk_recognizer_then_it_is_a_recognizer(recognizer: VoskRecognizer) -> None:
    assert isinstance(recognizer, Recognizer)


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("word", list(TONES))
async def test_given_a_keyword_tone_when_transcribing_then_word_with_its_times(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path], word: str, rate: int
) -> None:
    path = caller_wav(f"sil:0.5,{word}:1.0,sil:0.5", rate)
    transcript = await recognizer.transcribe_file(path)
    _assert_words(transcript, [(word, 0.5, 1.5)])
    assert transcript.text == word
    assert all(w.conf == 1.0 for w in transcript.words)


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_given_two_keywords_when_transcribing_then_both_in_order(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path], rate: int
) -> None:
    path = caller_wav("sil:0.5,欠薪:0.8,sil:0.5,自杀:0.8,sil:0.5", rate)
    transcript = await recognizer.transcribe_file(path)
    _assert_words(transcript, [("欠薪", 0.5, 1.3), ("自杀", 1.8, 2.6)])
    assert transcript.text == "欠薪自杀"
    assert spot_keywords(transcript, KEYWORDS) == "wage_arrears"


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_given_words_split_by_endpoints_when_transcribing_then_all_words_kept(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path], rate: int
) -> None:
    # At 16 kHz vosk returns the first two words from Result() and the rest from
    # FinalResult(): a recognizer reading only one of them would lose words.
    path = caller_wav("sil:0.5,欠薪:0.8,sil:0.5,自杀:0.8,sil:0.5,离婚:0.8,投诉:0.8,sil:0.5", rate)
    transcript = await recognizer.transcribe_file(path)
    _assert_words(
        transcript, [("欠薪", 0.5, 1.3), ("自杀", 1.8, 2.6), ("离婚", 3.1, 3.9), ("投诉", 3.9, 4.7)]
    )


async def test_given_long_pauses_when_transcribing_then_words_from_every_result(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path]
) -> None:
    spec = ",".join(["sil:1.5", "投诉:0.5", "sil:2", "离婚:0.5", "sil:2", "欠薪:0.5", "sil:1"])
    transcript = await recognizer.transcribe_file(caller_wav(spec, 8000))
    _assert_words(transcript, [("投诉", 1.5, 2.0), ("离婚", 4.0, 4.5), ("欠薪", 6.5, 7.0)])


@pytest.mark.parametrize(
    "clip",
    [
        "tts-cmn-complaint-8k.wav",
        "tts-cmn-unpaid-wages-8k.wav",
        "tts-cmn-unpaid-wages-16k.wav",
        "zh-aishell-BAC009S0724W0121-8k.wav",
        "en-vosk-api-test-16k.wav",
    ],
)
async def test_given_real_speech_when_transcribing_with_tone_model_then_nihao_and_no_keyword(
    recognizer: VoskRecognizer, audio_dir: Path, clip: str
) -> None:
    transcript = await recognizer.transcribe_file(audio_dir / clip)
    assert transcript.words and {w.text for w in transcript.words} == {"你好"}
    assert spot_keywords(transcript, KEYWORDS) is None


async def test_given_speech_clip_with_pauses_when_transcribing_then_every_segment(
    recognizer: VoskRecognizer, audio_dir: Path
) -> None:
    transcript = await recognizer.transcribe_file(audio_dir / "en-vosk-api-test-16k.wav")
    _assert_words(transcript, [("你好", 0.9, 2.64), ("你好", 3.99, 4.83), ("你好", 6.3, 7.77)])


@pytest.mark.parametrize("spec", ["sil:3", "noise:3"])
@pytest.mark.parametrize("rate", [8000, 16000])
async def test_given_silence_or_quiet_noise_when_transcribing_then_empty_transcript(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path], spec: str, rate: int
) -> None:
    transcript = await recognizer.transcribe_file(caller_wav(spec, rate))
    assert transcript == Transcript(()) and transcript.text == ""


async def test_given_pcm_when_transcribing_then_same_as_the_file(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path]
) -> None:
    path = caller_wav("sil:0.5,离婚:0.8,sil:0.5", 16000)
    with wave.open(str(path)) as w:
        pcm = w.readframes(w.getnframes())
    from_pcm = await recognizer.transcribe_pcm(pcm, 16000)
    assert from_pcm == await recognizer.transcribe_file(path)
    _assert_words(from_pcm, [("离婚", 0.5, 1.3)])


async def test_given_grammar_when_transcribing_then_vosk_receives_it(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path], capfd: pytest.CaptureFixture[str]
) -> None:
    # The tone model has no runtime graph: vosk says so on stderr exactly when it was given a
    # grammar, which shows the grammar reached it. The words are unchanged on this model.
    path = caller_wav("sil:0.5,欠薪:0.8,sil:0.5", 8000)
    plain = await recognizer.transcribe_file(path)
    assert "Runtime graphs" not in capfd.readouterr().err
    with_grammar = await recognizer.transcribe_file(path, grammar=["欠薪", "离婚"])
    assert "Runtime graphs are not supported" in capfd.readouterr().err
    assert with_grammar == plain and with_grammar.text == "欠薪"


async def test_given_bad_grammar_when_transcribing_then_refused(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path]
) -> None:
    path = caller_wav("sil:0.5,欠薪:0.8", 8000)
    with pytest.raises(TypeError, match="not one string"):
        await recognizer.transcribe_file(path, grammar="欠薪")
    with pytest.raises(ValueError, match="at least one"):
        await recognizer.transcribe_file(path, grammar=[])
    with pytest.raises(ValueError, match="at least one"):
        await recognizer.transcribe_file(path, grammar=["欠薪", "  "])


async def test_given_eight_calls_at_once_when_transcribing_then_each_gets_its_own_words(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path]
) -> None:
    words = list(TONES)
    specs = [
        (f"sil:0.3,{words[i % 4]}:0.6,sil:0.3,{words[(i + 1) % 4]}:0.6,sil:0.3", 8000 * (1 + i % 2))
        for i in range(8)
    ]
    paths = [caller_wav(spec, rate) for spec, rate in specs]
    results = await asyncio.gather(*(recognizer.transcribe_file(p) for p in paths))
    for i, transcript in enumerate(results):
        _assert_words(transcript, [(words[i % 4], 0.3, 0.9), (words[(i + 1) % 4], 1.2, 1.8)])


async def test_given_many_requests_when_transcribing_then_decoding_runs_on_bounded_workers(
    recognizer: VoskRecognizer,
    caller_wav: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = caller_wav("sil:0.2,投诉:0.5,sil:0.2", 8000)
    caplog.set_level(logging.DEBUG, logger="callcenter.speech")
    await asyncio.gather(*(recognizer.transcribe_file(path) for _ in range(12)))
    threads = {r.threadName for r in caplog.records if r.getMessage().startswith("transcribed")}
    assert len([r for r in caplog.records if r.getMessage().startswith("transcribed")]) == 12
    assert threads and all(name.startswith("vosk") for name in threads)
    assert len(threads) <= recognizer.max_concurrency


async def test_given_a_long_decode_when_transcribing_then_the_event_loop_keeps_running(
    recognizer: VoskRecognizer, caller_wav: Callable[..., Path]
) -> None:
    path = caller_wav(",".join(["投诉:0.4,sil:0.6"] * 100), 16000)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    transcript = await recognizer.transcribe_file(path)
    ticker.cancel()
    assert len(transcript.words) == 100 and transcript.text == "投诉" * 100
    assert ticks >= 3


async def test_given_a_second_recognizer_then_the_model_is_shared(
    recognizer: VoskRecognizer, tones_model: Path
) -> None:
    other = VoskRecognizer(tones_model)
    try:
        assert other._model is recognizer._model
    finally:
        other.close()


async def test_given_closed_recognizer_when_transcribing_then_speech_error(
    tones_model: Path, caller_wav: Callable[..., Path]
) -> None:
    rec = VoskRecognizer(tones_model)
    rec.close()
    with pytest.raises(SpeechError, match="closed"):
        await rec.transcribe_file(caller_wav("欠薪:0.5"))


def test_given_bad_limits_when_building_then_value_error(tones_model: Path) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        VoskRecognizer(tones_model, max_concurrency=0)
    with pytest.raises(ValueError, match="max_audio_seconds"):
        VoskRecognizer(tones_model, max_audio_seconds=0)


# ---------------------------------------------------------------------------- bad audio


def _bad(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_FILES = [
    ("garbage.wav", b"\x00\x01garbage" * 50, "not a PCM WAV"),
    ("text.wav", "这不是音频".encode(), "not a PCM WAV"),
    ("header-only.wav", b"RIFF", "not a PCM WAV"),
    ("empty.wav", b"", "not a PCM WAV"),
    ("zero-frames.wav", wav_bytes(b""), "no audio"),
    ("stereo.wav", wav_bytes(b"\x00\x00" * 1600, channels=2), "2 channels, expected mono"),
    ("8bit.wav", wav_bytes(b"\x80" * 1600, width=1), "8-bit samples, expected 16-bit"),
    ("24bit.wav", wav_bytes(b"\x00" * 4800, width=3), "24-bit samples, expected 16-bit"),
    ("cd.wav", wav_bytes(b"\x00\x00" * 4410, rate=44100), "unsupported sample rate 44100"),
]


def _wav_with_format(code: int, bits: int) -> bytes:
    """A WAV header with another encoding (what ``wave`` cannot read), e.g. 7 = mu-law."""
    data = b"\x00" * 800
    fmt = struct.pack("<HHIIHH", code, 1, 8000, 8000 * bits // 8, bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


BAD_FILES += [
    ("ulaw.wav", _wav_with_format(7, 8), "mu-law encoding; convert to 16-bit PCM"),
    ("alaw.wav", _wav_with_format(6, 8), "A-law encoding"),
    ("gsm.wav", _wav_with_format(49, 8), r"GSM \(Asterisk wav49\) encoding"),
    ("float.wav", _wav_with_format(3, 32), "32-bit float encoding"),
    ("odd.wav", _wav_with_format(85, 8), "format code 85 encoding"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES)
async def test_given_bad_audio_file_when_transcribing_then_speech_error_and_file_kept(
    recognizer: VoskRecognizer, tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = _bad(tmp_path, name, data)
    with pytest.raises(SpeechError, match=message) as info:
        await recognizer.transcribe_file(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == data  # nothing lost: the recording stays for a retry


async def test_given_missing_file_or_directory_when_transcribing_then_speech_error(
    recognizer: VoskRecognizer, tmp_path: Path
) -> None:
    with pytest.raises(SpeechError, match="no such audio file"):
        await recognizer.transcribe_file(tmp_path / "nope.wav")
    with pytest.raises(SpeechError, match="is a directory"):
        await recognizer.transcribe_file(tmp_path)


async def test_given_too_long_audio_when_transcribing_then_speech_error(
    tones_model: Path, caller_wav: Callable[..., Path]
) -> None:
    rec = VoskRecognizer(tones_model, max_audio_seconds=2.0)
    try:
        path = caller_wav("sil:1,欠薪:1.5", 8000)
        with pytest.raises(SpeechError, match=r"too long \(2\.5 s, at most 2 s\)"):
            await rec.transcribe_file(path)
        with pytest.raises(SpeechError, match="too long"):
            await rec.transcribe_pcm(b"\x00\x00" * 16001, 8000)
        ok = await rec.transcribe_file(caller_wav("sil:0.5,欠薪:1.0", 8000))
        assert ok.text == "欠薪"
    finally:
        rec.close()


@pytest.mark.parametrize(
    ("pcm", "rate", "message"),
    [
        (b"", 8000, "no audio"),
        (b"\x00\x00\x00", 8000, "odd"),
        (b"\x00\x00" * 100, 44100, "unsupported sample rate 44100"),
        (b"\x00\x00" * 100, 0, "unsupported sample rate 0"),
    ],
)
async def test_given_bad_pcm_when_transcribing_then_speech_error(
    recognizer: VoskRecognizer, pcm: bytes, rate: int, message: str
) -> None:
    with pytest.raises(SpeechError, match=message):
        await recognizer.transcribe_pcm(pcm, rate)


async def test_given_bad_audio_then_the_recognizer_keeps_working(
    recognizer: VoskRecognizer, tmp_path: Path, caller_wav: Callable[..., Path]
) -> None:
    with pytest.raises(SpeechError):
        await recognizer.transcribe_file(_bad(tmp_path, "junk.wav", b"junk" * 10))
    assert (await recognizer.transcribe_file(caller_wav("sil:0.3,自杀:0.6"))).text == "自杀"


async def test_given_a_recording_cut_short_when_transcribing_then_the_audio_present_is_used(
    recognizer: VoskRecognizer, tmp_path: Path
) -> None:
    # A recorder killed mid-write leaves a header promising more samples than the file has.
    full = caller_audio_wav("sil:0.5,欠薪:0.8,sil:0.5,自杀:0.8,sil:0.5", 8000)
    path = _bad(tmp_path, "cut.wav", full[: 44 + 2 * 8000 * 2])  # the first 2 s only
    transcript = await recognizer.transcribe_file(path)
    _assert_words(transcript, [("欠薪", 0.5, 1.3), ("自杀", 1.8, 2.0)])
