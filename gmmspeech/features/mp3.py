"""MPEG audio frame walking: the true length of an MP3 stream, whatever its tags say.

libsndfile estimates an MP3's length from the file size and the first frame's bit rate
unless a Xing/Info (or VBRI) header states it. That estimate counts the bytes of a leading
ID3v2 tag as audio (over-estimate) and is wrong for variable bit rates (libsndfile then
stops decoding at the under-estimate). :func:`scan_mp3` walks the frame headers instead:
it finds where the frames start, whether a length header is present, and whether the last
frame is complete, which is what "truncated" means for a stream without a length header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# kbit/s by (version is MPEG-1, layer) and bit-rate index 1..14
_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# sample rates by version bits (3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5) and index 0..2
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")
_TRAILERS = (b"TAG", b"APETAGEX", b"LYRICSBEGIN")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Mp3Layout:
    """What a walk over an MP3's frame headers found.

    Attributes
    ----------
    audio_start : int
        Byte offset of the first frame (after any ID3v2 tag).
    n_frames : int
        Complete frames.
    n_samples : int
        Samples per channel those frames hold (before decoder delay and padding).
    has_length_header : bool
        The first frame is a Xing, Info or VBRI header (libsndfile then knows the length).
    truncated : bool
        The last frame is cut short by the end of the file.
    """

    audio_start: int
    n_frames: int
    n_samples: int
    has_length_header: bool
    truncated: bool


def id3v2_size(head: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start of ``head`` (0 if there is none)."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _frame(header: int) -> tuple[int, int] | None:
    """``(frame bytes, samples)`` of a valid MPEG audio frame header, else None."""
    if header >> 21 != 0x7FF:
        return None
    version = (header >> 19) & 3
    layer = 4 - ((header >> 17) & 3)
    bitrate_index = (header >> 12) & 15
    rate_index = (header >> 10) & 3
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or free format (no length in the header)
    mpeg1 = version == 3
    bitrate = _BITRATES[mpeg1, layer][bitrate_index - 1] * 1000
    rate = _RATES[version][rate_index]
    pad = (header >> 9) & 1
    if layer == 1:
        return (12 * bitrate // rate + pad) * 4, 384
    if layer == 2 or mpeg1:
        return 144 * bitrate // rate + pad, 1152
    return 72 * bitrate // rate + pad, 576


def scan_mp3(path: str | os.PathLike[str]) -> Mp3Layout | None:
    """Walk the frames of an MP3 file; None when they cannot be walked (free format,
    no frame where the first one should be), in which case nothing is concluded."""
    size = os.stat(path).st_size
    with open(path, "rb") as f:
        start = id3v2_size(f.read(10))
        pos, n_frames, n_samples, has_length, truncated = start, 0, 0, False, False
        buf, buf_at = b"", start
        while pos < size:
            if pos + 4 > buf_at + len(buf) or pos < buf_at:
                f.seek(pos)
                buf, buf_at = f.read(_CHUNK), pos
            off = pos - buf_at
            if len(buf) - off < 4:
                truncated = buf[off:] != b"" and n_frames > 0 and not _is_trailer(buf[off:])
                break
            frame = _frame(int.from_bytes(buf[off : off + 4], "big"))
            if frame is None:
                if n_frames == 0:
                    return None
                break  # a trailing tag or junk after the last frame
            length, samples = frame
            if n_frames == 0:
                f.seek(pos)
                first = f.read(min(length, 200))
                has_length = any(tag in first for tag in _LENGTH_TAGS)
                f.seek(buf_at + len(buf))
            if pos + length > size:
                truncated = True
                break
            pos += length
            n_frames += 1
            n_samples += samples
    return Mp3Layout(start, n_frames, n_samples, has_length, truncated)


def _is_trailer(tail: bytes) -> bool:
    return any(tail.startswith(t[: len(tail)]) for t in _TRAILERS)


__all__ = ["Mp3Layout", "id3v2_size", "scan_mp3"]
