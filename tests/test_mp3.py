"""MP3 streams whose length libsndfile cannot know: an ID3v2 tag and no Xing/Info header."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gmmspeech.errors import AudioError
from gmmspeech.features.audio import audio_length, iter_audio_blocks, load_audio
from gmmspeech.features.mp3 import id3v2_size, scan_mp3

RATE = 16000
pytestmark = pytest.mark.skipif(
    "MP3" not in sf.available_formats(), reason="this libsndfile does not write MP3"
)


def _sine(seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _id3v2(padding: int) -> bytes:
    """An ID3v2.3 tag with one title frame and ``padding`` zero bytes (syncsafe size)."""
    text = b"\x00a sample-library title"
    body = b"TIT2" + len(text).to_bytes(4, "big") + b"\x00\x00" + text + b"\x00" * padding
    n = len(body)
    size = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    return b"ID3\x03\x00\x00" + size + body


def _mpeg2_layer3_frame_bytes(header: bytes) -> int:
    """Frame length of an MPEG-2 layer III frame, from the standard's table and formula."""
    h = int.from_bytes(header, "big")
    assert h >> 21 == 0x7FF and (h >> 19) & 3 == 2 and (h >> 17) & 3 == 1
    kbps = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160][(h >> 12) & 15]
    return 72 * kbps * 1000 // RATE + ((h >> 9) & 1)


@pytest.fixture
def tagged_no_xing(tmp_path: Path) -> tuple[Path, int]:
    """libsndfile's MP3 (16 kHz, MPEG-2 layer III, a Xing frame first) with the Xing frame
    removed and a 200 kB ID3v2 tag put in front; returns the path and its frame count."""
    src = tmp_path / "lame.mp3"
    sf.write(src, _sine(), RATE, format="MP3")
    raw = src.read_bytes()
    first = _mpeg2_layer3_frame_bytes(raw[:4])
    assert b"Xing" in raw[:first] or b"Info" in raw[:first]
    frames = raw[first:]
    assert b"Xing" not in frames[:200] and b"Info" not in frames[:200]
    n, pos = 0, 0
    while pos < len(frames):
        pos += _mpeg2_layer3_frame_bytes(frames[pos : pos + 4])
        n += 1
    assert pos == len(frames)
    out = tmp_path / "tagged.mp3"
    out.write_bytes(_id3v2(200_000) + frames)
    return out, n


def test_id3v2_size_is_the_syncsafe_size_plus_header() -> None:
    tag = _id3v2(1000)
    assert id3v2_size(tag + b"\xff\xf3") == len(tag)
    assert id3v2_size(b"\xff\xf3\x88\xc4" + b"\0" * 10) == 0


def test_tagged_mp3_without_xing_loads_completely(tagged_no_xing: tuple[Path, int]) -> None:
    path, n_frames = tagged_no_xing
    with sf.SoundFile(str(path)) as snd:  # the estimate that used to be trusted
        assert snd.frames > n_frames * 576 + 100_000
    layout = scan_mp3(path)
    assert layout is not None
    assert (layout.n_frames, layout.n_samples) == (n_frames, n_frames * 576)
    assert not layout.truncated and not layout.has_length_header
    y, rate = load_audio(path)
    assert rate == RATE
    # every frame decoded: 576 samples each (decoder delay and padding included)
    assert y.shape[0] == n_frames * 576
    # the content is the sine: its spectrum peaks at 440 Hz in the last second too
    tail = y[-RATE:]
    assert np.argmax(np.abs(np.fft.rfft(tail))) == 440
    assert np.sqrt(np.mean(tail**2)) > 0.15


def test_vbr_stream_without_length_header_is_not_cut_at_the_estimate(
    tagged_no_xing: tuple[Path, int], tmp_path: Path
) -> None:
    path, n_frames = tagged_no_xing
    bare = tmp_path / "bare.mp3"
    bare.write_bytes(path.read_bytes()[len(_id3v2(200_000)) :])
    y, _ = load_audio(bare)
    assert y.shape[0] == n_frames * 576


@pytest.mark.parametrize("cut", [1, 100, 2000])
def test_truncated_tagged_mp3_is_still_refused(
    tagged_no_xing: tuple[Path, int], tmp_path: Path, cut: int
) -> None:
    path, _ = tagged_no_xing
    short = tmp_path / "short.mp3"
    short.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(AudioError, match=r"short\.mp3: truncated MP3 file"):
        load_audio(short)


def test_mp3_with_xing_header_keeps_its_exact_length(tmp_path: Path) -> None:
    y0 = _sine()
    src = tmp_path / "lame.mp3"
    sf.write(src, y0, RATE, format="MP3")
    y, _ = load_audio(src)
    assert y.shape[0] == y0.shape[0]


@pytest.mark.parametrize("rate", [None, 8000])
def test_tagged_mp3_without_xing_streams_in_blocks(
    tagged_no_xing: tuple[Path, int], rate: int | None
) -> None:
    """The blockwise reader decodes a header-less MP3 through the same pipe as load_audio,
    block by block (not the whole signal at once), and gives the same samples."""
    path, n_frames = tagged_no_xing
    assert audio_length(path) == (n_frames * 576, RATE)  # the walk's count, not the estimate
    whole, _ = load_audio(path, rate)
    blocks = list(iter_audio_blocks(path, rate, block_frames=4096))
    assert len(blocks) > n_frames * 576 // 4096  # streamed, not one block
    joined = np.concatenate(blocks)
    assert joined.shape == whole.shape
    if rate is None:
        np.testing.assert_array_equal(joined, whole)
    else:  # one soxr stream against soxr's one-shot resampler: the same filter
        np.testing.assert_allclose(joined, whole, atol=2e-6)


def test_long_header_less_mp3_takes_the_blockwise_extraction(
    tagged_no_xing: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header-less MP3 longer than the blockwise threshold is extracted from blocks, and
    its features equal the whole-signal ones."""
    import gmmspeech.features.extraction_worker as worker
    from gmmspeech.config.sections import FeatureConfig
    from gmmspeech.features.frontend import extract_features

    path, _ = tagged_no_xing
    monkeypatch.setattr(worker, "BLOCKWISE_SECONDS", 1.0)  # the 3-s file counts as long
    read = []
    original = worker.iter_audio_blocks
    monkeypatch.setattr(
        worker, "iter_audio_blocks", lambda *a, **k: read.append(a[0]) or original(*a, **k)
    )
    cfg = FeatureConfig()
    res = worker.extract_one("u", str(path), cfg)
    assert read == [str(path)]
    got = res.features if isinstance(res.features, np.ndarray) else None
    assert got is not None, res
    want = extract_features(load_audio(path, cfg.sample_rate)[0], cfg.sample_rate, cfg)
    np.testing.assert_allclose(got, want, atol=5e-5)
