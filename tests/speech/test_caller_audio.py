"""The simulated caller's audio: exact WAV output, bad specs named, decodes as intended."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from callcenter.pbxsim.audio import TONE_WORDS, caller_audio_wav, caller_samples, parse_spec
from callcenter.speech import VoskRecognizer


def _read(data: bytes) -> tuple[int, int, int, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.readframes(w.getnframes())


@pytest.mark.parametrize("rate", [8000, 16000])
def test_given_a_spec_when_rendering_then_mono_16bit_wav_of_the_exact_length(rate: int) -> None:
    channels, width, got_rate, frames = _read(caller_audio_wav("sil:0.5,欠薪:0.8,noise:0.25", rate))
    assert (channels, width, got_rate) == (1, 2, rate)
    assert len(frames) == 2 * round(1.55 * rate)
    assert frames[:rate] == b"\x00" * rate  # the first 0.5 s is digital silence


def test_given_a_level_when_rendering_then_tone_peaks_at_that_level() -> None:
    # 1000 Hz and 2000 Hz at 8 kHz put a sample exactly on each crest
    loud = caller_samples("1000hz:0.5", 8000, level_dbfs=-6.0)
    quiet = caller_samples("1000hz:0.5", 8000, level_dbfs=-40.0)
    assert max(loud) == round(32767 * 10 ** (-6 / 20)) == -min(loud)
    assert max(quiet) == round(32767 * 10 ** (-40 / 20))
    assert max(caller_samples("投诉:0.2", 8000, level_dbfs=0.0)) == 32767


def test_given_same_spec_when_rendering_twice_then_identical_bytes() -> None:
    spec = "noise:0.3,投诉:0.3,697+1209hz:0.2"
    assert caller_audio_wav(spec) == caller_audio_wav(spec)


def test_given_tone_words_then_the_model_frequencies() -> None:
    assert TONE_WORDS == {"欠薪": 800.0, "离婚": 1200.0, "自杀": 1600.0, "投诉": 2000.0}
    assert [s.freqs for s in parse_spec("silence:1,1000hz:1,697+1209Hz:1")] == [
        (),
        (1000.0,),
        (697.0, 1209.0),
    ]


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("欠薪", "'欠薪'"),
        ("sil:0.5,唱歌:1", "'唱歌:1'"),
        ("欠薪:abc", "'欠薪:abc'"),
        ("欠薪:-1", "'欠薪:-1'"),
        ("欠薪:0", "'欠薪:0'"),
        ("欠薪:nan", "'欠薪:nan'"),
        ("sil:0.5,,欠薪:1", "''"),
        ("5000hz:1", "'5000hz:1'"),
        ("800+hz:1", "'800+hz:1'"),
        (":1", "':1'"),
    ],
)
def test_given_a_bad_spec_when_rendering_then_value_error_names_the_token(
    spec: str, named: str
) -> None:
    with pytest.raises(ValueError, match="bad audio spec token") as info:
        caller_audio_wav(spec)
    assert named in str(info.value)


def test_given_bad_arguments_when_rendering_then_value_error() -> None:
    with pytest.raises(ValueError, match="empty audio spec"):
        caller_audio_wav("  ")
    with pytest.raises(ValueError, match="at most 600 s"):
        caller_audio_wav("sil:400,sil:400")
    with pytest.raises(ValueError, match="rate must be 8000 or 16000"):
        caller_audio_wav("sil:1", rate=44100)
    with pytest.raises(ValueError, match="level_dbfs"):
        caller_audio_wav("欠薪:1", level_dbfs=3.0)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("sil:0.5,欠薪:0.8,sil:0.4", ["欠薪"]),
        ("noise:0.5,自杀:0.6,noise:0.5", ["自杀"]),
        ("sil:0.3,离婚:0.5,投诉:0.5,sil:0.3", ["离婚", "投诉"]),
        ("sil:0.3,1600hz:0.5,sil:0.3", ["自杀"]),
        ("sil:0.3,697+1209hz:0.5,sil:0.3", ["你好"]),  # DTMF 1 is not a keyword
        ("sil:0.3,440hz:0.5,sil:0.3", ["你好"]),
        ("noise:2", []),
    ],
)
@pytest.mark.parametrize("rate", [8000, 16000])
async def test_given_caller_audio_when_transcribing_then_the_intended_words(
    recognizer: VoskRecognizer, tmp_path: Path, spec: str, words: list[str], rate: int
) -> None:
    path = tmp_path / "said.wav"
    path.write_bytes(caller_audio_wav(spec, rate))
    assert [w.text for w in (await recognizer.transcribe_file(path)).words] == words


async def test_given_a_quiet_caller_when_transcribing_then_nothing_heard(
    recognizer: VoskRecognizer, tmp_path: Path
) -> None:
    path = tmp_path / "whisper.wav"
    path.write_bytes(caller_audio_wav("sil:0.3,欠薪:0.8,sil:0.3", 8000, level_dbfs=-60.0))
    assert (await recognizer.transcribe_file(path)).words == ()
