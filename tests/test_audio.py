"""load_audio: formats, down-mixing, resampling and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers_audio import SR, sine, write_wav

import gmmspeech
from gmmspeech.errors import AudioError, ConfigError
from gmmspeech.features.audio import load_audio, resample


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * sr / x.size)


@pytest.mark.parametrize(
    "fmt,subtype,atol",
    [
        ("wav", "PCM_16", 1 / 2**15),
        ("wav", "PCM_24", 1 / 2**23),
        ("wav", "PCM_U8", 1 / 2**7),
        ("wav", "FLOAT", 1e-7),
        ("flac", "PCM_16", 1 / 2**15),
    ],
)
def test_lossless_formats_round_trip(tmp_path: Path, fmt: str, subtype: str, atol: float) -> None:
    x = sine(440.0, 0.5, amp=0.5)
    p = write_wav(tmp_path / f"a.{fmt}", x, subtype=subtype)
    y, rate = load_audio(p)
    assert rate == SR
    assert y.dtype == np.float32 and y.ndim == 1 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=atol)


@pytest.mark.parametrize(
    "fmt,subtype", [("wav", "ALAW"), ("wav", "ULAW"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")]
)
def test_lossy_formats_keep_the_tone(tmp_path: Path, fmt: str, subtype: str) -> None:
    x = sine(440.0, 1.0, amp=0.5)
    p = tmp_path / f"a.{fmt}"
    sf.write(str(p), x, SR, subtype=subtype)
    y, rate = load_audio(p)
    assert rate == SR and y.dtype == np.float32
    assert abs(y.size - x.size) <= 2048  # codec padding
    assert abs(_dominant_hz(y, rate) - 440.0) < 3.0
    rms_x = float(np.sqrt(np.mean(x**2)))
    rms_y = float(np.sqrt(np.mean(y[2048:-2048] ** 2)))
    assert abs(rms_y / rms_x - 1) < 0.1


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left, right = sine(300.0, 0.25, 0.4), sine(700.0, 0.25, 0.2)
    p = tmp_path / "stereo.wav"
    sf.write(str(p), np.stack([left, right], axis=1), SR, subtype="FLOAT")
    y, _ = load_audio(p)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)


def test_resampling_8k_to_16k(tmp_path: Path) -> None:
    x = sine(440.0, 1.0, amp=0.5, sr=8000)
    p = write_wav(tmp_path / "8k.wav", x, sr=8000)
    y, rate = load_audio(p, sample_rate=16000)
    assert rate == 16000 and y.size == 2 * x.size
    assert abs(_dominant_hz(y, rate) - 440.0) < 2.0
    # the same as librosa's resampler applied by hand (the oracle)
    import librosa

    ref = librosa.resample(sf.read(str(p), dtype="float32")[0], orig_sr=8000, target_sr=16000)
    np.testing.assert_allclose(y, ref, atol=1e-6)


@pytest.mark.parametrize(("orig", "target"), [(44100, 16000), (22050, 16000), (16000, 8000)])
def test_resample_equals_librosa_resample(orig: int, target: int) -> None:
    import librosa

    rng = np.random.default_rng(orig)
    for n in (orig, orig // 3 + 7, 1001):
        x = (0.1 * rng.standard_normal(n)).astype(np.float32)
        ref = librosa.resample(x, orig_sr=orig, target_sr=target)
        got = resample(x, orig, target)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_path_with_spaces(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "zoom in" / "a clip.wav", sine(200.0, 0.1))
    y, _ = load_audio(str(p))
    assert y.size == 1600


def _expect(path: Path, *words: str) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(path)
    msg = str(info.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.wav", "no such file")


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    _expect(p, "empty", "0 bytes")


def test_text_file_named_wav(tmp_path: Path) -> None:
    p = tmp_path / "notes.wav"
    p.write_text("these are not samples\n" * 20)
    _expect(p, "not an audio file")


def test_truncated_wav_header(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "good.wav", sine(440.0, 0.5))
    p = tmp_path / "cut.wav"
    p.write_bytes(good.read_bytes()[:30])
    _expect(p, "truncated", "WAV")


def test_truncated_wav_data(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "good.wav", sine(440.0, 0.5))
    p = tmp_path / "cut.wav"
    p.write_bytes(good.read_bytes()[:5000])
    _expect(p, "truncated", "declares")


def test_truncated_flac(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    good = write_wav(tmp_path / "good.flac", (0.3 * rng.standard_normal(SR)).astype(np.float32))
    p = tmp_path / "cut.flac"
    data = good.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _expect(p, "truncated")


def test_no_samples(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "none.wav", np.zeros(0, dtype=np.float32))
    _expect(p, "no samples")


def test_nan_samples(tmp_path: Path) -> None:
    x = sine(440.0, 0.1)
    x[10] = np.nan
    x[20] = np.inf
    p = write_wav(tmp_path / "nan.wav", x, subtype="FLOAT")
    _expect(p, "2 of 1600 samples are NaN or infinite", "sample 10")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    _expect(tmp_path, "folder")


def test_errors_are_value_errors_and_exported(tmp_path: Path) -> None:
    assert gmmspeech.load_audio is load_audio
    assert issubclass(gmmspeech.AudioError, ValueError)
    with pytest.raises(ValueError):
        load_audio(tmp_path / "nope.wav")


def test_bad_sample_rate_argument(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "a.wav", sine(440.0, 0.1))
    with pytest.raises(ConfigError, match="sample_rate"):
        load_audio(p, sample_rate=0)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_mp3_decoder_notes_are_logged_with_the_file_not_printed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    x = sine(440.0, 3.0)
    sf.write(tmp_path / "ok.mp3", x, SR, format="MP3")
    data = bytearray((tmp_path / "ok.mp3").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 60] = bytes(np.random.default_rng(0).integers(0, 256, 60, dtype=np.uint8))
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(bytes(data))
    with caplog.at_level("DEBUG", logger="gmmspeech.features.audio"):
        signal, _ = load_audio(bad)
    assert signal.size > SR  # decoded past the damage
    printed = capfd.readouterr().err
    assert "Illegal Audio-MPEG-Header" not in printed and "resync" not in printed
    notes = [r.getMessage() for r in caplog.records if "MP3 decoder" in r.getMessage()]
    assert len(notes) == 1 and str(bad) in notes[0] and "Illegal Audio-MPEG-Header" in notes[0]
    assert all(r.levelname == "DEBUG" for r in caplog.records if "MP3 decoder" in r.getMessage())
    # stderr works again afterwards
    import sys

    print("after", file=sys.stderr)
    assert "after" in capfd.readouterr().err
