"""Features: librosa as the MFCC oracle, known answers for energy, deltas, VAD, CMVN, warping."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.special
import scipy.stats
from helpers_audio import SR, bursts, noise, sine

import gmmspeech
from gmmspeech.config.sections import FeatureConfig, config_hash, to_dict
from gmmspeech.errors import AudioError, ConfigError, DataError
from gmmspeech.features import frontend
from gmmspeech.features.frontend import (
    add_deltas,
    extract_features,
    fill_features,
    frame_energy_db,
    mfcc,
    vad_mask,
)
from gmmspeech.features.normalize import normalize


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
def _emphasised(y: np.ndarray, a: float) -> np.ndarray:
    """Pre-emphasis written out: y[n] - a y[n-1], with y[-1] = y[0]."""
    return np.concatenate([[y[0] * (1 - a)], y[1:] - a * y[:-1]]).astype(np.float32)


def _librosa_oracle(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """MFCCs computed by librosa directly (its own framing, filterbank, dB and DCT)."""
    m = librosa.feature.mfcc(
        y=_emphasised(y, cfg.pre_emphasis),
        sr=cfg.sample_rate,
        n_mfcc=cfg.n_mfcc,
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=cfg.window,
        center=cfg.center,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )
    return m.T


def _raw_frames(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The samples under librosa's window in each frame, written out with a loop."""
    n_fft, win, hop = cfg.fft_size, cfg.win_length, cfg.hop_length
    pad = n_fft // 2 if cfg.center else 0
    p = np.concatenate([np.zeros(pad), y.astype(np.float64), np.zeros(pad)])
    n = 1 + (p.size - n_fft) // hop
    off = (n_fft - win) // 2
    return np.array([p[t * hop + off : t * hop + off + win] for t in range(n)])


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(),
        FeatureConfig(n_mfcc=13, n_mels=24, window="hann", pre_emphasis=0.0, fmax=7000.0),
        FeatureConfig(sample_rate=8000, frame_length_ms=32, n_fft=512, fmin=100.0),
        FeatureConfig(center=False, top_db=80.0),
    ],
    ids=["default", "hann-13", "8k", "not-centred"],
)
def test_mfcc_matches_librosa(cfg: FeatureConfig) -> None:
    y = noise(1.3, 0.1, seed=3, sr=cfg.sample_rate) + sine(300.0, 1.3, 0.2, cfg.sample_rate)
    ours = mfcc(y, cfg)
    ref = _librosa_oracle(y, cfg)
    assert ours.shape == ref.shape == (_raw_frames(y, cfg).shape[0], cfg.n_mfcc)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(pre_emphasis=0.0, vad="none", normalization="none"),
        FeatureConfig(
            pre_emphasis=0.0, vad="none", normalization="none", center=False, delta_window=3
        ),
        FeatureConfig(
            pre_emphasis=0.0,
            vad="none",
            normalization="none",
            sample_rate=8000,
            window="hann",
            n_mfcc=13,
            n_mels=30,
            deltas=1,
            delta_window=1,
        ),
    ],
    ids=["default-stft", "not-centred-w3", "8k-hann-d1"],
)
def test_extract_features_is_librosa_mfcc_plus_librosa_deltas(cfg: FeatureConfig) -> None:
    """With no pre-emphasis, VAD or normalisation the features ARE librosa's, frame for frame."""
    y = noise(1.1, 0.1, seed=5, sr=cfg.sample_rate) + sine(440.0, 1.1, 0.3, cfg.sample_rate)
    m = librosa.feature.mfcc(
        y=y,
        sr=cfg.sample_rate,
        n_mfcc=cfg.n_mfcc,
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=cfg.window,
        center=cfg.center,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )
    width = 2 * cfg.delta_window + 1
    blocks = [m] + [
        librosa.feature.delta(m, width=width, order=k) for k in range(1, cfg.deltas + 1)
    ]
    expected = np.vstack(blocks).T
    got = extract_features(y, cfg.sample_rate, cfg)
    assert got.shape == expected.shape == (m.shape[1], cfg.n_features)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_log_energy_replaces_c0() -> None:
    cfg = FeatureConfig(energy="log_energy")
    y = noise(0.5, 0.1, seed=1)
    ours = mfcc(y, cfg)
    expected = np.log(np.sum(_raw_frames(y, cfg) ** 2, axis=1))
    np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(ours[:, 1:], _librosa_oracle(y, cfg)[:, 1:], rtol=1e-5, atol=1e-4)


def test_sine_energy_in_dbfs() -> None:
    cfg = FeatureConfig()
    for amp in (1.0, 0.5, 0.01):
        # 1 kHz at 16 kHz: a 400-sample window holds exactly 25 periods, so mean(x^2) = A^2/2;
        # centred frames: frame t's window covers samples [160 t - 200, 160 t + 200)
        e = frame_energy_db(sine(1000.0, 0.5, amp), cfg)
        assert e.shape == (1 + 8000 // 160,)
        np.testing.assert_allclose(e[2:49], 20 * np.log10(amp / np.sqrt(2)), atol=1e-3)
        assert (e[:2] < e[2]).all() and (e[49:] < e[2]).all()  # half in the zero padding


# ----------------------------------------------------------------------- deltas
def test_deltas_of_a_linear_ramp_and_a_parabola() -> None:
    t = np.arange(30, dtype=np.float32)
    slopes = np.array([0.5, -2.0, 3.0], dtype=np.float32)
    x = t[:, None] * slopes + np.array([1.0, 2.0, -3.0], dtype=np.float32)
    out = add_deltas(x, order=2, window=2)
    assert out.shape == (30, 9) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :3], x)
    # polynomial fits are exact on a line, edges included (mode="interp")
    np.testing.assert_allclose(out[:, 3:6], np.broadcast_to(slopes, (30, 3)), rtol=1e-5)
    np.testing.assert_allclose(out[:, 6:9], 0.0, atol=1e-4)
    # second order is the second derivative of a quadratic fit: 2 on t^2 (delta of delta
    # by regression would not give 2 at the edges)
    q = add_deltas((0.1 * t * t)[:, None], order=2, window=3)
    np.testing.assert_allclose(q[3:-3, 1], 0.2 * t[3:-3], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q[:, 2], 0.2, rtol=1e-4)


@pytest.mark.parametrize("n_frames", [3, 5, 7, 40])
@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_deltas_equal_local_polynomial_fits_written_out(
    n_frames: int, window: int, order: int
) -> None:
    """Order k = k-th derivative of the degree-k least-squares fit over 2N+1 frames, the
    window shifted inside the utterance at the edges (Savitzky-Golay, interp mode)."""
    rng = np.random.default_rng(n_frames * 10 + window)
    x = rng.standard_normal((n_frames, 4)).astype(np.float32)
    width = 2 * window + 1
    if order and n_frames < width:
        with pytest.raises(AudioError, match="too short for deltas"):
            add_deltas(x, order, window)
        return
    blocks = [x.astype(np.float64)]
    for k in range(1, order + 1):
        d = np.zeros((n_frames, 4))
        for t in range(n_frames):
            s = min(max(t - window, 0), n_frames - width)
            pos = np.arange(s, s + width, dtype=np.float64)
            for j in range(4):
                coef = np.polyfit(pos - t, x[s : s + width, j].astype(np.float64), k)
                d[t, j] = coef[0] * math.factorial(k)  # k-th derivative at t
        blocks.append(d)
    np.testing.assert_allclose(add_deltas(x, order, window), np.hstack(blocks), atol=1e-4)


def _polyfit_deltas(x: np.ndarray, order: int, window: int) -> np.ndarray:
    """Written-out oracle of librosa's interp-mode deltas of ``x`` (d, n), in float64:
    the k-th derivative at t of the degree-k least-squares fit over 2N+1 frames."""
    d, n = x.shape
    width = 2 * window + 1
    out = np.zeros((d, n))
    for t in range(n):
        s = min(max(t - window, 0), n - width)
        pos = np.arange(s, s + width, dtype=np.float64) - t
        coef = np.polyfit(pos, x[:, s : s + width].T.astype(np.float64), order)
        out[:, t] = coef[0] * math.factorial(order)
    return out


@pytest.mark.parametrize("block", [1, 4, 37, 1 << 13])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_fill_features_in_time_blocks_is_librosa_on_the_whole_matrix(
    monkeypatch: pytest.MonkeyPatch, block: int, window: int
) -> None:
    """Deltas filtered a time block at a time (with context) are the deltas of the whole
    matrix: librosa.feature.delta on all frames at once, and the fits written out."""
    monkeypatch.setattr(frontend, "DELTA_FRAMES", block)
    rng = np.random.default_rng(block + window)
    n = 211
    static = np.cumsum(rng.standard_normal((20, n)), axis=1).astype(np.float32)
    keep = rng.random(n) < 0.7
    cfg = FeatureConfig(delta_window=window)
    width = 2 * window + 1
    whole = [static] + [
        librosa.feature.delta(static, width=width, order=k, mode="interp") for k in (1, 2)
    ]
    for cols in (keep, slice(None), np.flatnonzero(keep)):
        out = np.full((np.arange(n)[cols].size, cfg.n_features), np.nan, dtype=np.float32)
        fill_features(static, cols, cfg, out)
        want = np.vstack(whole)[:, cols].T
        scale = np.abs(want).max(axis=0)
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-6 * scale.max())
    written = np.vstack([static] + [_polyfit_deltas(static, k, window) for k in (1, 2)])
    np.testing.assert_allclose(out, written[:, keep].T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("block", [16, 1 << 13])
def test_long_utterance_features_are_librosa_called_directly(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """A whole utterance of many delta blocks: librosa's MFCCs and deltas, frame for frame."""
    monkeypatch.setattr(frontend, "DELTA_FRAMES", block)
    cfg = FeatureConfig(pre_emphasis=0.0, vad="none", normalization="none")
    y = noise(3.0, 0.1, seed=11) + sine(440.0, 3.0, 0.3)
    m = librosa.feature.mfcc(
        y=y,
        sr=SR,
        n_mfcc=cfg.n_mfcc,
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=cfg.window,
        center=cfg.center,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
    )
    width = 2 * cfg.delta_window + 1
    want = np.vstack([m] + [librosa.feature.delta(m, width=width, order=k) for k in (1, 2)]).T
    got = extract_features(y, SR, cfg)
    assert got.shape == want.shape == (301, 60)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_utterance_shorter_than_the_delta_filter_is_an_audio_error() -> None:
    cfg = FeatureConfig(vad="none")
    y = noise(0.03, 0.1, 0)  # 480 samples: 4 centred frames < width 5
    with pytest.raises(AudioError, match="too short for deltas: 4 frames"):
        extract_features(y, SR, cfg)
    assert extract_features(y, SR, FeatureConfig(vad="none", deltas=0)).shape == (4, 20)


# -------------------------------------------------------------------------- VAD
@pytest.mark.parametrize("mode", ["energy", "gmm"])
def test_vad_keeps_bursts_and_drops_silence(mode: str) -> None:
    cfg = FeatureConfig(vad=mode)
    y, spans = bursts(
        [("silence", 0.7), ("speech", 0.8), ("silence", 0.5), ("speech", 0.4), ("silence", 0.3)]
    )
    keep = vad_mask(frame_energy_db(y, cfg), cfg)
    starts = np.arange(keep.size) * 160 - 200  # centred frames: window start of frame t
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
    static = _librosa_oracle(y, cfg).T
    full = np.vstack(
        [static] + [librosa.feature.delta(static, width=5, order=k) for k in (1, 2)]
    ).T.astype(np.float64)
    e = 10 * np.log10(np.maximum(np.mean(_raw_frames(y, cfg) ** 2, axis=1), 1e-20))
    assert e.shape[0] == full.shape[0]
    keep = e > max(np.quantile(e, 0.99) - 30.0, -75.0)
    kept = full[keep]
    expected = (kept - kept.mean(axis=0)) / kept.std(axis=0)
    got = extract_features(y, SR, cfg)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=5e-3)


def test_rate_mismatch_is_resampled_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    y8, _ = bursts([("silence", 0.3), ("speech", 0.8), ("silence", 0.3)], seed=2, sr=8000)
    with caplog.at_level(logging.INFO, logger="gmmspeech.features.frontend"):
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
    from gmmspeech.features.audio import load_audio

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
            n_total = 1 + y.size // 160
            assert 0 < f.shape[0] <= n_total, p
