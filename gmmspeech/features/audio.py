"""Reading audio files into mono float32 signals.

:func:`load_audio` reads anything libsndfile reads (WAV in any PCM/float/A-law/u-law
encoding, FLAC, OGG/Vorbis, MP3, AIFF, ...), down-mixes multi-channel audio by averaging the
channels and resamples (soxr, as librosa does) when a rate is asked for. Every failure is an
:class:`~gmmspeech.errors.AudioError` naming the file and the cause.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError, ConfigError
from .mp3 import Mp3Layout, scan_mp3

log = logging.getLogger(__name__)

#: Leading bytes of the containers libsndfile reads, to tell "not audio" from "corrupt".
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"RIFF", "WAV"),
    (b"RIFX", "WAV"),
    (b"RF64", "WAV (RF64)"),
    (b"fLaC", "FLAC"),
    (b"OggS", "OGG"),
    (b"ID3", "MP3"),
    (b"\xff\xfb", "MP3"),
    (b"\xff\xf3", "MP3"),
    (b"\xff\xf2", "MP3"),
    (b"\xff\xfa", "MP3"),
    (b"FORM", "AIFF"),
    (b".snd", "AU"),
    (b"caff", "CAF"),
    (b"NIST", "NIST SPHERE"),
)

#: Frames a decoder may legitimately deliver short of the header's count (MP3 padding).
_SHORT_TOLERANCE = 2048


def _sniff(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _wav_declared_shortfall(path: Path, size: int) -> tuple[int, int] | None:
    """For a RIFF WAV, (declared data bytes, available data bytes) if the data is cut short."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"data":
                    # 0 and 0xFFFFFFFF are written by streaming recorders that never
                    # patch the header: nothing to compare against.
                    if csize in (0, 0xFFFFFFFF):
                        return None
                    available = size - (pos + 8)
                    return (csize, available) if csize > available else None
                pos += 8 + csize + (csize & 1)
    except OSError:
        return None
    return None


@contextlib.contextmanager
def _decoder_notes(p: Path, kind: str | None) -> Iterator[None]:
    """Keep what the MP3 decoder (mpg123, in C) prints on stderr, e.g. ``Illegal
    Audio-MPEG-Header ... Trying to resync``, and log it once, at DEBUG, with the file name:
    on the terminal it names no file. Other formats do not print; they are left alone."""
    if kind != "MP3" and p.suffix.lower() != ".mp3":
        yield
        return
    try:
        sink = tempfile.TemporaryFile()
        saved = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        lines = sink.read().decode("utf-8", "replace").splitlines()
        sink.close()
        if lines:
            log.debug("%s: MP3 decoder: %d message(s): %s", p, len(lines), " | ".join(lines[:3]))


def _decode_error(p: Path, size: int, head: bytes, kind: str | None, exc: Exception) -> AudioError:
    reason = str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
    if kind is None:
        return AudioError(
            f"{p}: not an audio file ({size} bytes starting with {head[:8]!r}; "
            f"libsndfile: {reason}); expected WAV, FLAC, OGG, MP3 or another format "
            f"libsndfile reads"
        )
    return AudioError(
        f"{p}: corrupt or truncated {kind} file ({size} bytes; libsndfile: {reason}); "
        f"re-copy the file or re-encode it"
    )


def _probe(p: Path) -> tuple[int, bytes, str | None, Mp3Layout | None]:
    """The checks before decoding: (size, first bytes, container kind, MP3 frame walk)."""
    if not p.exists():
        raise AudioError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, expected an audio file")
    if not p.is_file():  # reading a FIFO would block, a device would not end
        raise AudioError(f"{p}: is a FIFO, device or socket, expected an audio file")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise AudioError(
            f"{p}: cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    if size == 0:
        raise AudioError(f"{p}: the file is empty (0 bytes); re-copy or re-record it")
    kind = _sniff(head)
    mp3 = scan_mp3(p) if kind == "MP3" else None
    if mp3 is not None and mp3.n_frames == 0:
        after = f" after its {mp3.audio_start}-byte ID3v2 tag" if mp3.audio_start else ""
        raise AudioError(
            f"{p}: truncated or corrupt MP3 file: no complete audio frame{after} "
            f"({size} bytes); re-copy the file"
        )
    if mp3 is not None and mp3.truncated:
        raise AudioError(
            f"{p}: truncated MP3 file: its last frame is cut short ({mp3.n_frames} complete "
            f"frames); re-copy the file"
        )
    return size, head, kind, mp3


def load_audio(
    path: str | os.PathLike[str], sample_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float32 signal.

    Parameters
    ----------
    path : path-like
        Any file libsndfile reads: WAV (PCM 8/16/24/32-bit, float, A-law, u-law), FLAC,
        OGG/Vorbis, MP3, AIFF, ... Paths may contain spaces.
    sample_rate : int, optional
        Resample to this rate (Hz) with :func:`resample` if the file's rate
        differs. ``None`` keeps the file's rate.

    Returns
    -------
    signal : ndarray, shape (n_samples,), float32
        Samples in [-1, 1] (the file's full scale); multi-channel files are averaged.
    rate : int
        The rate of ``signal`` in Hz (``sample_rate`` when given).

    Raises
    ------
    AudioError
        The file is missing, empty (0 bytes), not audio, truncated or corrupt, holds no
        samples, or holds NaN/infinite samples. The message names the file and the cause.
    ConfigError
        ``sample_rate`` is not a positive integer.
    """
    if sample_rate is not None and (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, np.integer))
        or sample_rate <= 0
    ):
        raise ConfigError(f"sample_rate: must be None or a positive integer, got {sample_rate!r}")
    p = Path(path)
    size, head, kind, mp3 = _probe(p)
    try:
        with _decoder_notes(p, kind):
            if mp3 is not None and not mp3.has_length_header:
                # no length header: libsndfile's estimate counts tag bytes and misses VBR; a
                # pipe makes it decode to the end of the stream, which the frame walk vouched for
                declared_frames, fmt, rate, data = _decode_to_end(p, mp3.audio_start)
            else:
                with sf.SoundFile(str(p)) as snd:
                    declared_frames, fmt, rate = (
                        int(snd.frames),
                        str(snd.format),
                        int(snd.samplerate),
                    )
                    data = snd.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, EOFError) as exc:
        raise _decode_error(p, size, head, kind, exc) from None
    shortfall = _wav_declared_shortfall(p, size) if kind == "WAV" else None
    if shortfall is not None:
        declared, available = shortfall
        raise AudioError(
            f"{p}: truncated WAV file: its header declares {declared} bytes of audio but only "
            f"{available} are present; re-copy the file, or rewrite it (e.g. with sox) if the "
            f"shorter audio is wanted"
        )
    if declared_frames > 0 and data.shape[0] < declared_frames - _SHORT_TOLERANCE:
        raise AudioError(
            f"{p}: truncated {kind or fmt} file: the header declares {declared_frames} "
            f"samples but only {data.shape[0]} could be decoded; re-copy the file"
        )
    if data.shape[0] == 0:
        raise AudioError(f"{p}: holds no samples (a valid {fmt} header with 0 frames)")
    if data.shape[1] > 1:
        signal = data.mean(axis=1, dtype=np.float32)
    else:
        signal = data[:, 0]
    bad = ~np.isfinite(signal)
    if bad.any():
        n_bad = int(bad.sum())
        first = int(np.argmax(bad))
        raise AudioError(
            f"{p}: {n_bad} of {signal.size} samples are NaN or infinite (first at sample "
            f"{first}, {first / rate:.3f} s); the file is corrupt, re-export it"
        )
    if sample_rate is not None and int(sample_rate) != rate:
        signal = resample(signal, rate, int(sample_rate))
        log.debug("%s: resampled from %d Hz to %d Hz", p, rate, sample_rate)
        rate = int(sample_rate)
    return np.ascontiguousarray(signal, dtype=np.float32), int(rate)


def audio_length(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(frames, rate)`` from the file's header; for an MP3 without a length header, the
    samples its frames hold (:func:`gmmspeech.features.mp3.scan_mp3`), which is what decoding gives.

    Raises
    ------
    AudioError
        As :func:`load_audio`, for the checks that need no decoding.
    """
    p = Path(path)
    size, head, kind, mp3 = _probe(p)
    try:
        with _decoder_notes(p, kind):
            info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, EOFError) as exc:
        raise _decode_error(p, size, head, kind, exc) from None
    if mp3 is not None and not mp3.has_length_header:
        # libsndfile's estimate is wrong here; the frame walk counted what decoding gives
        return mp3.n_samples, int(info.samplerate)
    return int(info.frames), int(info.samplerate)


def iter_audio_blocks(
    path: str | os.PathLike[str], sample_rate: int | None = None, block_frames: int = 1 << 16
) -> Iterator[np.ndarray]:
    """The signal of :func:`load_audio`, in consecutive blocks, without holding all of it.

    Resampling runs through one ``soxr.ResampleStream`` (the same HQ filter as
    :func:`resample`), and the total is cut or zero-padded to :func:`resample`'s length.

    Parameters
    ----------
    path : path-like
    sample_rate : int, optional
        Output rate; ``None`` keeps the file's.
    block_frames : int
        Frames read from the file per block.

    Yields
    ------
    ndarray, shape (n_i,), float32
        Mono blocks (the last may be empty).

    Raises
    ------
    AudioError
        As :func:`load_audio`; a decoding error, NaN samples or a truncation found late is
        raised after the blocks before it were yielded.
    """
    p = Path(path)
    size, head, kind, mp3 = _probe(p)
    shortfall = _wav_declared_shortfall(p, size) if kind == "WAV" else None
    if shortfall is not None:
        raise AudioError(
            f"{p}: truncated WAV file: its header declares {shortfall[0]} bytes of audio but "
            f"only {shortfall[1]} are present; re-copy the file"
        )
    with _decoder_notes(p, kind), contextlib.ExitStack() as stack:
        try:
            if mp3 is not None and not mp3.has_length_header:
                snd = stack.enter_context(_piped_decoder(p, mp3.audio_start))
                declared = 0  # the stream declares none; the frame walk vouched for it
            else:
                snd = stack.enter_context(sf.SoundFile(str(p)))
                declared = int(snd.frames)
        except (sf.LibsndfileError, RuntimeError, EOFError) as exc:
            raise _decode_error(p, size, head, kind, exc) from None
        rate, fmt = int(snd.samplerate), str(snd.format)
        out_rate = rate if sample_rate is None else int(sample_rate)
        stream = None if out_rate == rate else soxr.ResampleStream(rate, out_rate, 1)
        n_in = n_out = 0
        last = False
        while not last:
            try:
                data = snd.read(block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, EOFError) as exc:
                raise _decode_error(p, size, head, kind, exc) from None
            last = data.shape[0] < block_frames
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            bad = ~np.isfinite(mono)
            if bad.any():
                first = n_in + int(np.argmax(bad))
                raise AudioError(
                    f"{p}: NaN or infinite samples (first at sample {first}, "
                    f"{first / rate:.3f} s); the file is corrupt, re-export it"
                )
            n_in += mono.shape[0]
            block = mono if stream is None else stream.resample_chunk(mono, last=last)
            if last and stream is not None:
                want = int(np.ceil(n_in * float(out_rate) / rate)) - n_out
                block = np.concatenate(
                    [block[:want], np.zeros(max(0, want - block.shape[0]), np.float32)]
                )
            n_out += block.shape[0]
            yield np.ascontiguousarray(block, dtype=np.float32)
    if declared > 0 and n_in < declared - _SHORT_TOLERANCE:
        raise AudioError(
            f"{p}: truncated {kind or fmt} file: the header declares {declared} "
            f"samples but only {n_in} could be decoded; re-copy the file"
        )
    if n_in == 0:
        raise AudioError(f"{p}: holds no samples (a valid {fmt} header with 0 frames)")


def _feed(path: Path, start: int, fd: int) -> None:
    """Write the bytes of ``path`` from ``start`` into the pipe ``fd``, then close it."""
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            src.seek(start)
            while chunk := src.read(1 << 16):
                dst.write(chunk)
    except (BrokenPipeError, OSError):
        pass  # the reader stopped (an error it reports itself)


@contextlib.contextmanager
def _piped_decoder(path: Path, start: int) -> Iterator[sf.SoundFile]:
    """A SoundFile decoding the MPEG stream from byte ``start`` of ``path`` through a pipe,
    so that libsndfile reads until the stream ends instead of stopping at its length
    estimate; the feeding thread is joined on exit."""
    r, w = os.pipe()
    feeder = threading.Thread(target=_feed, args=(path, start, w), daemon=True)
    feeder.start()
    try:
        with sf.SoundFile(r, closefd=False) as snd:
            yield snd
    finally:
        os.close(r)
        feeder.join()


def _decode_to_end(path: Path, start: int) -> tuple[int, str, int, np.ndarray]:
    """The whole stream of :func:`_piped_decoder`: ``(0, format, rate, data (n, channels)
    float32)``, 0 as the declared length, since the stream declares none."""
    with _piped_decoder(path, start) as snd:
        fmt, rate = str(snd.format), int(snd.samplerate)
        blocks = []
        while True:
            blk = snd.read(1 << 16, dtype="float32", always_2d=True)
            blocks.append(blk)
            if blk.shape[0] < 1 << 16:
                break
    return 0, fmt, rate, np.concatenate(blocks)


def resample(signal: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono signal as ``librosa.resample`` does by default (soxr, high quality).

    The soxr library (librosa's own resampler) is called directly, because the first
    ``librosa.resample`` call in a process imports librosa's signal stack (about 1.5 s on
    the reference machine, paid by every extraction worker); the output is the same
    (the tests compare it with librosa's).

    Parameters
    ----------
    signal : ndarray, shape (n_samples,)
    orig_rate, target_rate : int
        Rates in Hz.

    Returns
    -------
    ndarray, shape (ceil(n_samples * target_rate / orig_rate),), float32
    """
    y = np.asarray(signal, dtype=np.float32)
    if orig_rate == target_rate:
        return y
    n_out = int(np.ceil(y.shape[0] * float(target_rate) / orig_rate))
    out = np.asarray(soxr.resample(y, orig_rate, target_rate, quality="HQ"), dtype=np.float32)
    if out.shape[0] >= n_out:
        return np.ascontiguousarray(out[:n_out])
    return np.concatenate([out, np.zeros(n_out - out.shape[0], dtype=np.float32)])


__all__ = ["audio_length", "iter_audio_blocks", "load_audio", "resample"]
