"""Model folder problems give one clear error at load, and check-config reports them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from callcenter.settings import ConfigError, load_settings
from callcenter.speech import SpeechError, SpeechModelMissing, VoskRecognizer, load_recognizer
from callcenter.speech.loader import model_status


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for path in dst.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst


@pytest.fixture
def corrupt_model(tones_model: Path, tmp_path: Path) -> Path:
    model = _copy_model(tones_model, tmp_path / "corrupt-model")
    (model / "am" / "final.mdl").write_bytes(b"\xef\xbf\xbd garbage \xef\xbf\xbd" * 100)
    return model


@pytest.fixture
def truncated_model(tones_model: Path, tmp_path: Path) -> Path:
    model = _copy_model(tones_model, tmp_path / "truncated-model")
    mdl = model / "am" / "final.mdl"
    mdl.write_bytes(mdl.read_bytes()[: mdl.stat().st_size // 2])
    return model


def test_given_missing_folder_when_loading_then_model_missing_names_the_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vosk-model-small-cn-0.22"
    with pytest.raises(SpeechModelMissing, match="no such folder") as info:
        VoskRecognizer(path)
    assert str(path) in str(info.value) and "CALLCENTER_VOSK_MODEL_PATH" in str(info.value)
    assert isinstance(info.value, SpeechError)


def test_given_empty_folder_when_loading_then_model_missing(tmp_path: Path) -> None:
    with pytest.raises(SpeechModelMissing, match=r"folder is empty"):
        VoskRecognizer(tmp_path)


def test_given_a_file_when_loading_then_model_missing(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(SpeechModelMissing, match="not a folder"):
        VoskRecognizer(path)


def test_given_the_parent_folder_when_loading_then_told_it_is_not_a_model(
    models_dir: Path,
) -> None:
    with pytest.raises(SpeechModelMissing, match=r"no am/final\.mdl") as info:
        VoskRecognizer(models_dir)
    assert str(models_dir) in str(info.value)


@pytest.mark.parametrize("model_fixture", ["corrupt_model", "truncated_model"])
def test_given_corrupt_model_when_loading_then_model_missing_says_unusable(
    request: pytest.FixtureRequest, model_fixture: str
) -> None:
    path: Path = request.getfixturevalue(model_fixture)
    with pytest.raises(SpeechModelMissing, match="unusable, its files are corrupt") as info:
        VoskRecognizer(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_given_no_model_configured_when_loading_then_none() -> None:
    settings = load_settings()
    assert settings.vosk_model_path is None
    assert load_recognizer(settings) is None
    assert model_status(settings) == (
        True,
        "not configured (CALLCENTER_VOSK_MODEL_PATH unset: speech menus use DTMF)",
    )


def test_given_empty_model_variable_when_loading_then_not_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLCENTER_VOSK_MODEL_PATH", "")
    assert load_settings().vosk_model_path is None


def test_given_model_configured_when_loading_then_shared_vosk_recognizer(
    tones_model: Path, recognizer: VoskRecognizer
) -> None:
    settings = load_settings(
        vosk_model_path=str(tones_model), speech_max_concurrency=3, speech_max_audio_seconds=60
    )
    loaded = load_recognizer(settings)
    assert isinstance(loaded, VoskRecognizer)
    try:
        assert loaded._model is recognizer._model
        assert (loaded.max_concurrency, loaded.max_audio_seconds) == (3, 60.0)
    finally:
        loaded.close()


def test_given_bad_speech_limits_when_loading_settings_then_config_error() -> None:
    with pytest.raises(ConfigError, match="CALLCENTER_SPEECH_MAX_CONCURRENCY"):
        load_settings(speech_max_concurrency=0)
    with pytest.raises(ConfigError, match="CALLCENTER_SPEECH_MAX_AUDIO_SECONDS"):
        load_settings(speech_max_audio_seconds=-1)


def _cli(
    *args: str, model: Path | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    clean.update(env or {})
    if model is not None:
        clean["CALLCENTER_VOSK_MODEL_PATH"] = str(model)
    return subprocess.run(
        [sys.executable, "-m", "callcenter", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_given_model_states_when_checking_config_then_each_is_reported(
    tones_model: Path, corrupt_model: Path, tmp_path: Path
) -> None:
    unset = _cli("check-config", model=None)
    assert unset.returncode == 0, unset.stderr
    assert "speech model: not configured" in unset.stdout
    assert "configuration OK" in unset.stdout

    loaded = _cli("check-config", model=tones_model)
    assert loaded.returncode == 0, loaded.stderr
    assert f"speech model: loaded ({tones_model})" in loaded.stdout

    missing = tmp_path / "no-model-here"
    for bad, why in ((missing, "no such folder"), (corrupt_model, "corrupt")):
        result = _cli("check-config", model=bad)
        assert result.returncode == 2
        assert "configuration OK" not in result.stdout
        ours = [line for line in result.stderr.splitlines() if line.startswith("callcenter:")]
        assert len(ours) == 1 and str(bad) in ours[0] and why in ours[0], result.stderr
        assert ours[0].startswith("callcenter: error: speech model unusable: Vosk model")


@pytest.mark.slow
def test_given_missing_model_when_serving_then_one_clear_error_at_start(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    env = {
        "CALLCENTER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CALLCENTER_DATA_DIR": str(tmp_path / "data"),
    }
    assert _cli("migrate", model=None, env=env).returncode == 0
    missing = tmp_path / "vosk-model-small-cn-0.22"
    result = _cli("serve", "--port", str(free_port()), model=missing, env=env)
    assert result.returncode == 2
    ours = [line for line in result.stderr.splitlines() if line.startswith("callcenter:")]
    assert ours == [
        f"callcenter: error: Vosk model {missing}: no such folder "
        "(check CALLCENTER_VOSK_MODEL_PATH)"
    ]
