"""Layout patterns matched without backtracking, checked against Python's ``re``.

The oracle is the backtracking translation of a pattern to a Python regular expression
(lazy plain fields, restrictions as written, ``(?P=name)`` for a field used twice), run on
paths short enough for backtracking to be cheap.
"""

from __future__ import annotations

import random
import re

import pytest

from gmmspeech.corpus.layout import compile_pattern
from gmmspeech.errors import ConfigError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]+))?\}")


def backtracking_regex(pattern: str) -> re.Pattern[str]:
    ext, body = "", pattern
    m = re.search(r"\.([A-Za-z0-9]+)$", pattern)
    if m and not _FIELD.search(pattern[m.start() :]):
        ext, body = m.group(1), pattern[: m.start()]

    def literal(text: str) -> str:
        out, i = [], 0
        while i < len(text):
            if text.startswith("**/", i):
                out.append("(?:[^/]+/)*")
                i += 3
            elif text[i] == "*":
                out.append("[^/]*")
                i += 1
            else:
                out.append(re.escape(text[i]))
                i += 1
        return "".join(out)

    out, seen, pos = [], [], 0
    for f in _FIELD.finditer(body):
        out.append(literal(body[pos : f.start()]))
        name, rx = f.group(1), f.group(2)
        if name in seen:
            out.append(f"(?P={name})")
        else:
            seen.append(name)
            body_rx = "[^/]+?" if not rx else rx.replace(".", "[^/]").replace("[^", "[^/")
            out.append(f"(?P<{name}>{body_rx})")
        pos = f.end()
    out.append(literal(body[pos:]))
    if ext:
        out.append(r"\.(?i:" + re.escape(ext) + ")")
    return re.compile("".join(out))


FIELDS = ["", ":[0-9]+", ":[a-z]*", ":.+", ":[^_]+", ":.?", ":[a-z]+?", ":x[0-9]", ":[0-9]*[a-z]"]
SEPARATORS = ["-", "_", "/", "a", "**/", "*", "-_", ""]


@pytest.mark.parametrize("seed", range(4))
def test_fields_and_matches_equal_the_backtracking_regex(seed: int) -> None:
    rng = random.Random(seed)
    n_match = n_compared = 0
    while n_compared < 20_000:
        names = [rng.choice("abc") for _ in range(rng.randint(1, 4))]
        parts = [rng.choice(["", "a", "**/"])]
        for i, name in enumerate(names):
            if i:
                parts.append(rng.choice(SEPARATORS))
            rx = "" if name in names[:i] else rng.choice(FIELDS)
            parts.append("{" + name + rx + "}")
        pattern = "".join(parts) + rng.choice([".wav", "", "_x.wav", "/"])
        try:
            mine, _ = compile_pattern(pattern)
        except ConfigError:
            continue  # e.g. a field used twice without a character it cannot match after it
        ref = backtracking_regex(pattern)
        for _ in range(25):
            path = "".join(rng.choice("ab-_/1x") for _ in range(rng.randint(1, 12)))
            path += rng.choice([".wav", ".WAV", "", ".flac"])
            got, want = mine.fullmatch(path), ref.fullmatch(path)
            assert (got is None) == (want is None), (pattern, path)
            if want is not None:
                assert got is not None and got.groupdict() == want.groupdict(), (pattern, path)
                n_match += 1
            n_compared += 1
    assert n_match > 200  # the comparison saw matches, not only refusals


def test_the_issue_patterns_decide_long_paths() -> None:
    # 12 {x:.*} fields and 14 plain fields against 200-character paths: a backtracking
    # matcher takes more than 120 s for one of them (gmmspeech bench patterns times these)
    rng = random.Random(0)
    stars, _ = compile_pattern("".join(f"{{f{i}:.*}}" for i in range(12)) + "x.wav")
    plain, _ = compile_pattern("-".join(f"{{f{i}}}" for i in range(14)) + ".wav")
    for _ in range(50):
        body = "".join(rng.choice("ab-") for _ in range(196))
        assert stars.fullmatch(body + ".wav") is None  # no 'x' before the extension
        assert plain.fullmatch(body + ".wax") is None
        m = plain.fullmatch(body + ".wav")
        want = backtracking_regex("-".join(f"{{f{i}}}" for i in range(14)) + ".wav")
        # on a path that matches, the backtracking regex finds its answer fast: compare
        w = want.fullmatch(body + ".wav")
        assert (m is None) == (w is None)
        if m is not None and w is not None:
            assert m.groupdict() == w.groupdict()


@pytest.mark.parametrize("pattern", ["{a}{a}x.wav", "{a}-{b}-{a}.wav", "{a:[0-9]+}1{a}.wav"])
def test_a_field_used_twice_needs_an_end_it_cannot_match(pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"field \{a\} is used twice"):
        compile_pattern(pattern)


def test_librispeech_layout_still_reads_its_fields() -> None:
    m, fields = compile_pattern("{spk}/{chapter}/{spk}-{chapter}-{utt}.flac")
    got = m.fullmatch("103/1240/103-1240-0003.FLAC")
    assert fields == ["spk", "chapter", "utt"]
    assert got is not None and got.groupdict() == {"spk": "103", "chapter": "1240", "utt": "0003"}
    assert m.fullmatch("103/1240/104-1240-0003.flac") is None
