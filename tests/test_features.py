"""Features: librosa as the MFCC oracle, known answers for energy, deltas, VAD, CMVN, warping."""

from __future__ import annotations

import logging
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.special
import scipy.stats
from helpers_audio import SR, bursts, noise, sine

import gmmspeech
from gmmspeech.config import FeatureConfig, config_hash, to_dict
from gmmspeech.errors import AudioError, ConfigError, DataError
from gmmspeech.features import (
    add_deltas,
    extract_features,
    frame_energy_db,
    mfcc,
    normalize,
    vad_mask,
)


# ------------------------------------------------------------------------- config
def test_config_defaults_are_speaker_recognition_defaults() -> None:
    cfg = FeatureConfig()
    assert (cfg.sample_rate, cfg.win_length, cfg.hop_length, cfg.fft_size) == (16000, 400, 160, 512)
    assert (cfg.n_mfcc, cfg.n_mels, cfg.pre_emphasis, cfg.n_features) == (20, 40, 0.97, 60)
    assert cfg.vad == "energy" and cfg.normalization == "cmvn"
    assert gmmspeech.FeatureConfig is FeatureConfig


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_mfcc": 41}, "n_mfcc"),
        ({"frame_length_ms": 0}, "frame_length_ms"),
        ({"pre_emphasis": 1.0}, "pre_emphasis"),
        ({"vad": "webrtc"}, "vad"),
        ({"normalization": "zscore"}, "normalization"),
        ({"norm_window": 300}, "norm_window"),
        ({"fmax": 9000.0}, "fmax"),
        ({"deltas": 3}, "deltas"),
        ({"n_fft": 256}, "n_fft"),
        ({"n_mels": "40"}, "n_mels"),
    ],
)
def test_config_validation_names_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        FeatureConfig(**kwargs)


def test_config_hash_is_stable_across_int_and_float() -> None:
    a = FeatureConfig(frame_length_ms=25, fmin=20)
    b = FeatureConfig()
    assert to_dict(a) == to_dict(b) and config_hash(a) == config_hash(b)
    assert config_hash(FeatureConfig(n_mfcc=13)) != config_hash(b)


# --------------------------------------------------------------------- MFCC core
def _librosa_oracle(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """MFCCs computed by librosa directly: pre-emphasis written out, explicit padding."""
    a = cfg.pre_emphasis
    emph = np.concatenate([[y[0] * (1 - a)], y[1:] - a * y[:-1]]).astype(np.float32)
    left = (cfg.fft_size - cfg.win_length) // 2
    padded = np.pad(emph, (left, cfg.fft_size - cfg.win_length - left))
    m = librosa.feature.mfcc(
        y=padded,
        sr=cfg.sample_rate,
        n_mfcc=cfg.n_mfcc,
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=cfg.window,
        center=False,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )
    return m.T


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(),
        FeatureConfig(n_mfcc=13, n_mels=24, window="hann", pre_emphasis=0.0, fmax=7000.0),
        FeatureConfig(sample_rate=8000, frame_length_ms=32, n_fft=512, fmin=100.0),
    ],
    ids=["default", "hann-13", "8k"],
)
def test_mfcc_matches_librosa(cfg: FeatureConfig) -> None:
    y = noise(1.3, 0.1, seed=3, sr=cfg.sample_rate) + sine(300.0, 1.3, 0.2, cfg.sample_rate)
    ours = mfcc(y, cfg)
    ref = _librosa_oracle(y, cfg)
    n_expected = 1 + (y.size - cfg.win_length) // cfg.hop_length
    assert ours.shape == ref.shape == (n_expected, cfg.n_mfcc)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-3)


def test_log_energy_replaces_c0() -> None:
    cfg = FeatureConfig(energy="log_energy")
    y = noise(0.5, 0.1, seed=1)
    ours = mfcc(y, cfg)
    n = 1 + (y.size - 400) // 160
    expected = np.array(
        [np.log(np.sum(y[t * 160 : t * 160 + 400].astype(np.float64) ** 2)) for t in range(n)]
    )
    np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(ours[:, 1:], _librosa_oracle(y, cfg)[:, 1:], rtol=1e-4, atol=2e-3)


def test_sine_energy_in_dbfs() -> None:
    cfg = FeatureConfig()
    for amp in (1.0, 0.5, 0.01):
        # 1 kHz at 16 kHz: a 400-sample frame holds exactly 25 periods, so mean(x^2) = A^2/2
        e = frame_energy_db(sine(1000.0, 0.5, amp), cfg)
        assert e.shape == (1 + (8000 - 400) // 160,)
        np.testing.assert_allclose(e, 20 * np.log10(amp / np.sqrt(2)), atol=1e-3)


# ----------------------------------------------------------------------- deltas
def test_deltas_of_a_linear_ramp() -> None:
    t = np.arange(30, dtype=np.float32)
    slopes = np.array([0.5, -2.0, 3.0], dtype=np.float32)
    x = t[:, None] * slopes + np.array([1.0, 2.0, -3.0], dtype=np.float32)
    out = add_deltas(x, order=2, window=2)
    assert out.shape == (30, 9) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :3], x)
    # interior: the regression slope is the ramp's slope; delta-deltas vanish
    np.testing.assert_allclose(out[2:-2, 3:6], np.broadcast_to(slopes, (26, 3)), rtol=1e-6)
    np.testing.assert_allclose(out[4:-4, 6:9], 0.0, atol=1e-5)
    # first frame, edges repeated: (1*(x1-x0) + 2*(x2-x0)) / 10 = 0.5 * slope
    np.testing.assert_allclose(out[0, 3:6], 0.5 * slopes, rtol=1e-6)


@pytest.mark.parametrize("n_frames", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_deltas_equal_the_regression_formula_written_out(
    n_frames: int, window: int, order: int
) -> None:
    rng = np.random.default_rng(n_frames * 10 + window)
    x = rng.standard_normal((n_frames, 4)).astype(np.float32)
    blocks, cur = [x.astype(np.float64)], x.astype(np.float64)
    norm = 2 * sum(m * m for m in range(1, window + 1))
    for _ in range(order):  # edges repeated beyond the first and last frame
        d = np.zeros_like(cur)
        for t in range(n_frames):
            for m in range(1, window + 1):
                d[t] += m * (cur[min(t + m, n_frames - 1)] - cur[max(t - m, 0)])
        cur = d / norm
        blocks.append(cur)
    np.testing.assert_allclose(add_deltas(x, order, window), np.hstack(blocks), atol=1e-5)


# -------------------------------------------------------------------------- VAD
@pytest.mark.parametrize("mode", ["energy", "gmm"])
def test_vad_keeps_bursts_and_drops_silence(mode: str) -> None:
    cfg = FeatureConfig(vad=mode)
    y, spans = bursts(
        [("silence", 0.7), ("speech", 0.8), ("silence", 0.5), ("speech", 0.4), ("silence", 0.3)]
    )
    keep = vad_mask(frame_energy_db(y, cfg), cfg)
    starts = np.arange(keep.size) * 160
    inside = np.zeros(keep.size, dtype=bool)
    overlap = np.zeros(keep.size, dtype=bool)
    for a, b in spans:
        inside |= (starts >= a) & (starts + 400 <= b)
        overlap |= (starts + 400 > a) & (starts < b)
    assert keep[inside].all()
    assert not keep[~overlap].any()


def test_vad_floor_drops_digital_silence_and_none_keeps_all() -> None:
    y = np.concatenate([np.zeros(8000, np.float32), noise(0.5, 0.1, 0)])
    cfg = FeatureConfig()
    e = frame_energy_db(y, cfg)
    assert e[:40].max() == pytest.approx(-200.0)
    assert not vad_mask(e, cfg)[:40].any()
    assert vad_mask(e, FeatureConfig(vad="none")).all()


def test_silent_clip_is_an_audio_error() -> None:
    with pytest.raises(AudioError, match="VAD kept no frame"):
        extract_features(np.zeros(16000, np.float32), SR)


def test_clip_shorter_than_one_frame() -> None:
    with pytest.raises(AudioError, match="shorter than one frame"):
        extract_features(noise(0.02, 0.1, 0), SR)  # 320 samples < 400


# ---------------------------------------------------------------- normalisation
def test_cmvn_gives_zero_mean_unit_variance() -> None:
    y, _ = bursts([("silence", 0.3), ("speech", 1.5), ("silence", 0.3)], seed=4)
    f = extract_features(y, SR)
    assert f.shape[1] == 60 and f.dtype == np.float32 and f.flags.c_contiguous
    np.testing.assert_allclose(f.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(f.std(axis=0), 1.0, atol=1e-4)


def test_cmn_only_subtracts_the_mean() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    np.testing.assert_allclose(normalize(x, "cmn"), x - x.mean(axis=0), atol=1e-5)


def _sliding_reference(x: np.ndarray, w: int, var: bool) -> np.ndarray:
    n = x.shape[0]
    out = np.empty_like(x, dtype=np.float64)
    for t in range(n):
        if n <= w:
            a, b = 0, n
        else:
            a = min(max(t - w // 2, 0), n - w)
            b = a + w
        seg = x[a:b].astype(np.float64)
        out[t] = x[t] - seg.mean(axis=0)
        if var:
            out[t] /= seg.std(axis=0)
    return out


@pytest.mark.parametrize("mode", ["sliding_cmn", "sliding_cmvn"])
@pytest.mark.parametrize("n", [40, 7])
def test_sliding_normalisation_matches_a_loop(mode: str, n: int) -> None:
    x = np.random.default_rng(n).normal(1.0, 3.0, size=(n, 5)).astype(np.float32)
    got = normalize(x, mode, window=11)
    np.testing.assert_allclose(got, _sliding_reference(x, 11, mode == "sliding_cmvn"), atol=1e-4)


def _warp_reference(x: np.ndarray, w: int) -> np.ndarray:
    n = x.shape[0]
    out = np.empty_like(x, dtype=np.float64)
    for t in range(n):
        a, b = (
            (0, n)
            if n <= w
            else (min(max(t - w // 2, 0), n - w), min(max(t - w // 2, 0), n - w) + w)
        )
        for d in range(x.shape[1]):
            ranks = scipy.stats.rankdata(x[a:b, d])  # average ranks for ties
            r = ranks[t - a]
            out[t, d] = scipy.special.ndtri((r - 0.5) / (b - a))
    return out


@pytest.mark.parametrize("n", [60, 9])
def test_feature_warping_matches_rank_to_gaussian(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.exponential(size=(n, 3)).astype(np.float32)
    x[3, 0] = x[4, 0]  # a tie
    got = normalize(x, "warp", window=21)
    np.testing.assert_allclose(got, _warp_reference(x, 21), atol=1e-5)


# ---------------------------------------------------------------- the pipeline
def test_pipeline_equals_its_parts() -> None:
    """extract_features = mfcc -> deltas -> VAD (raw energy) -> CMVN over kept frames."""
    cfg = FeatureConfig()
    y, _ = bursts([("silence", 0.4), ("speech", 0.9), ("silence", 0.4)], seed=9)
    ref_static = _librosa_oracle(y, cfg).astype(np.float64)

    # deltas by the regression formula, written out
    def delta(c: np.ndarray) -> np.ndarray:
        p = np.concatenate([c[:1], c[:1], c, c[-1:], c[-1:]])
        n = c.shape[0]
        return ((p[3 : 3 + n] - p[1 : 1 + n]) + 2 * (p[4 : 4 + n] - p[0:n])) / 10

    d1 = delta(ref_static)
    full = np.hstack([ref_static, d1, delta(d1)])
    n = full.shape[0]
    e = np.array(
        [
            10 * np.log10(np.mean(y[t * 160 : t * 160 + 400].astype(np.float64) ** 2))
            for t in range(n)
        ]
    )
    keep = e > max(np.quantile(e, 0.99) - 30.0, -75.0)
    kept = full[keep]
    expected = (kept - kept.mean(axis=0)) / kept.std(axis=0)
    got = extract_features(y, SR, cfg)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=5e-3)


def test_rate_mismatch_is_resampled_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    y8, _ = bursts([("silence", 0.3), ("speech", 0.8), ("silence", 0.3)], seed=2, sr=8000)
    with caplog.at_level(logging.INFO, logger="gmmspeech.features"):
        got = extract_features(y8, 8000, FeatureConfig())
    assert any("8000 Hz" in r.getMessage() and "16000" in r.getMessage() for r in caplog.records)
    y16 = librosa.resample(y8, orig_sr=8000, target_sr=16000)
    np.testing.assert_allclose(got, extract_features(y16, 16000), atol=1e-5)
    # framing at 16 kHz: ~100 frames per second of audio before the VAD, not 50 or 200
    assert 60 <= got.shape[0] <= 160


def test_bad_signals() -> None:
    with pytest.raises(DataError, match="NaN or infinite"):
        extract_features(np.array([0.1, np.nan] * 400, dtype=np.float32), SR)
    with pytest.raises(DataError, match="mono"):
        extract_features(np.zeros((1600, 2), np.float32), SR)
    with pytest.raises(ConfigError, match="sample_rate"):
        extract_features(np.zeros(1600, np.float32), 0)
    with pytest.raises(ConfigError, match="config"):
        extract_features(np.zeros(1600, np.float32), SR, {"n_mfcc": 13})  # type: ignore[arg-type]


@pytest.mark.shared_data
def test_real_files_of_each_dataset(shared_data: Path) -> None:
    from gmmspeech.audio import load_audio

    picks = {
        "fsdd": sorted((shared_data / "fsdd" / "recordings").glob("*.wav"))[:3],
        "librispeech": sorted((shared_data / "librispeech_samples").rglob("*.flac"))[:2],
        "arabic": sorted(
            (shared_data / "arabic_speech_commands" / "dataset" / "zoom in").glob("*.flac")
        )[:3],
        "environmental": sorted((shared_data / "environmental_sounds").rglob("*.flac"))[:3],
    }
    cfg = FeatureConfig()
    for name, files in picks.items():
        assert files, f"no files found for {name}"
        for p in files:
            y, rate = load_audio(p, sample_rate=16000)
            f = extract_features(y, rate, cfg)
            assert f.shape[1] == 60 and f.dtype == np.float32, p
            assert np.isfinite(f).all(), p
            # the VAD keeps some but (for these recordings) not an absurd share of frames
            n_total = 1 + (y.size - 400) // 160
            assert 0 < f.shape[0] <= n_total, p
