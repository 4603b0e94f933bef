"""Layout patterns matched in linear time: sets of string positions as bits of an integer.

A backtracking regular-expression engine can take exponential time on a pattern of several
fields that may each hold the separator between them (``{a}-{b}-...`` against a long name
that ends wrong). Here a pattern is a sequence of tokens (literal text, fields of character
classes with ``? * +``, ``*``, ``**/``, a field used again); the set of positions reachable
after each token is one Python integer (bit ``p``: ``path[:p]`` consumed), and each token maps
a set to the next with a few integer operations (a class run by one addition, whose carry
runs along the run). A path matches when the end position is reachable.

Fields are then filled left to right: each takes, among the ends from which the rest of the
pattern can still reach the end of the path (a pass over the reversed path), the shortest
text (plain fields, and fields whose quantifiers are all lazy) or the longest (other
restricted fields); ``*`` and ``**/`` take the longest. A field used twice must match the
same text: those choices are tried in order, each checked by a forward pass, within a
budget of steps per path.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator, Mapping

from ..errors import DataError

#: Field choices tried per path when a pattern repeats a field (each costs one pass).
MAX_STEPS = 2000


@dataclasses.dataclass(frozen=True)
class Item:
    """One character class with its quantifier (``""``, ``?``, ``*`` or ``+``)."""

    cls: str
    quant: str = ""


@dataclasses.dataclass(frozen=True)
class Token:
    """``kind``: ``lit`` (``text``; ``cilit``: any case), ``field`` (``name``, ``items``, ``lazy``), ``ref``
    (``name``: a field used again), ``star`` (``*``) or ``glob`` (``**/``)."""

    kind: str
    text: str = ""
    name: str = ""
    items: tuple[Item, ...] = ()
    lazy: bool = True


ANY = "[^/]"  # a character of one path component
SLASH = "/"


def _reverse(tokens: tuple[Token, ...]) -> tuple[Token, ...]:
    out = []
    for t in reversed(tokens):
        if t.kind in ("lit", "cilit"):
            out.append(dataclasses.replace(t, text=t.text[::-1]))
        elif t.kind == "field":
            out.append(dataclasses.replace(t, items=t.items[::-1]))
        elif t.kind == "glob":
            out.append(Token("rglob"))
        else:
            out.append(t)
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _member(rx: str, ch: str) -> bool:
    return re.fullmatch(rx, ch) is not None


@functools.lru_cache(maxsize=4096)
def _char_class(ch: str, ci: bool) -> str:
    low, up = re.escape(ch.lower()), re.escape(ch.upper())
    return f"[{low}{up}]" if ci and low != up else re.escape(ch)


#: Each byte with its bits in reverse order.
_REVERSED_BYTE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _reverse_bits(x: int, width: int) -> int:
    """``x`` with bits ``0 .. width-1`` in reverse order."""
    nbytes = (width + 7) // 8
    b = x.to_bytes(nbytes, "big").translate(_REVERSED_BYTE)
    return int.from_bytes(b, "little") >> (8 * nbytes - width)


@functools.lru_cache(maxsize=256)
def _byte_table(rx: str) -> bytes:
    """``bytes.translate`` table: an ASCII byte -> b"1" when in the class, else b"0"."""
    return bytes(49 if i < 128 and _member(rx, chr(i)) else 48 for i in range(256))


class _Masks:
    """Bit masks of one string: bit ``p`` set when character ``p`` is in a class."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.n = len(s)
        self._ascii = s.encode("ascii") if s.isascii() else None
        self._chars = None if s.isascii() else set(s)
        self._cache: dict[tuple[str, bool], int] = {}

    def cls(self, rx: str) -> int:
        key = (rx, False)
        m = self._cache.get(key)
        if m is None:
            if self._ascii is not None:
                t: str | bytes = self._ascii.translate(_byte_table(rx))
            else:
                table = {ord(c): "1" if _member(rx, c) else "0" for c in self._chars or ()}
                t = self.s.translate(table)
            m = int(t[::-1], 2) if t else 0
            self._cache[key] = m
        return m

    def text(self, text: str, ci: bool) -> int:
        key = (text, True) if ci else ("\0" + text, False)
        occ = self._cache.get(key)
        if occ is None:
            occ = (1 << (self.n + 1)) - 1
            for j, ch in enumerate(text):
                occ &= self.cls(_char_class(ch, ci)) >> j
            self._cache[key] = occ
        return occ


# op codes of a compiled token: each op maps a set of positions to the next
_LIT, _ONE, _OPT, _STAR, _PLUS, _GLOB, _RGLOB = range(7)
Op = tuple[int, int, int]  # (code, mask index, length of a literal)


def _ops(t: Token, spec: dict[tuple[str, str, bool], int], fields: Mapping[str, Token]) -> list[Op]:
    """The ops of token ``t`` (a field used again: its first use's ops); ``spec`` numbers
    the masks they read: ("cls", regex) or ("text", text, case-insensitive)."""

    def mask(kind: str, value: str, ci: bool = False) -> int:
        return spec.setdefault((kind, value, ci), len(spec))

    if t.kind in ("lit", "cilit"):
        return [(_LIT, mask("text", t.text, t.kind == "cilit"), len(t.text))]
    if t.kind == "star":
        return [(_STAR, mask("cls", ANY), 0)]
    if t.kind in ("glob", "rglob"):
        mask("cls", SLASH)
        return [
            (_GLOB if t.kind == "glob" else _RGLOB, mask("cls", ANY), spec[("cls", SLASH, False)])
        ]
    items = t.items if t.kind == "field" else fields[t.name].items
    code = {"": _ONE, "?": _OPT, "*": _STAR, "+": _PLUS}
    return [(code[it.quant], mask("cls", it.cls), 0) for it in items]


def _run(ops: list[Op], m: list[int], s: int) -> int:
    """The positions reachable from the set ``s`` through ``ops`` (masks ``m``)."""
    for code, i, n in ops:
        mi = m[i]
        if code == _LIT:
            s = (s & mi) << n
        elif code == _ONE:
            s = (s & mi) << 1
        elif code == _OPT:
            s |= (s & mi) << 1
        elif code == _STAR:
            # the carry of mi + x runs from each start in a run of mi to just past its end
            x = s & mi
            s |= x | ((mi + x) ^ mi)
        elif code == _PLUS:
            x = (s & mi) << 1
            y = x & mi
            s = x | y | ((mi + y) ^ mi)
        else:  # (?:[^/]+/)* forward, (?:/[^/]+)* on the reversed string
            sl = m[n]
            reach = frontier = s
            while frontier:
                if code == _RGLOB:
                    x = ((frontier & sl) << 1 & mi) << 1
                else:
                    x = (frontier & mi) << 1
                y = x & mi
                x = x | y | ((mi + y) ^ mi)
                nxt = (x & sl) << 1 if code == _GLOB else x
                frontier = nxt & ~reach
                reach |= frontier
            s = reach
        if not s:
            return 0
    return s


def _masks(masks: _Masks, spec: dict[tuple[str, str, bool], int]) -> list[int]:
    out = [0] * len(spec)
    for (kind, value, ci), i in spec.items():
        out[i] = masks.cls(value) if kind == "cls" else masks.text(value, ci)
    return out


def _bits(x: int) -> Iterator[int]:
    while x:
        low = x & -x
        yield low.bit_length() - 1
        x ^= low


def _bits_down(x: int) -> Iterator[int]:
    while x:
        top = x.bit_length() - 1
        yield top
        x ^= 1 << top


class PathMatch:
    """The field values of a matched path."""

    def __init__(self, groups: dict[str, str]) -> None:
        self._groups = groups

    def groupdict(self) -> dict[str, str]:
        return dict(self._groups)

    def group(self, name: str) -> str:
        return self._groups[name]


class PathPattern:
    """A compiled layout pattern (:func:`gmmspeech.corpus.layout.compile_pattern`)."""

    def __init__(self, pattern: str, tokens: list[Token]) -> None:
        self.pattern = pattern
        self.tokens = tuple(tokens)
        self.fields = {t.name: t for t in self.tokens if t.kind == "field"}
        self._has_refs = any(t.kind == "ref" for t in self.tokens)
        self._spec: dict[tuple[str, str, bool], int] = {}
        self._prog = [_ops(t, self._spec, self.fields) for t in self.tokens]
        self._rspec: dict[tuple[str, str, bool], int] = {}
        rprog = [_ops(t, self._rspec, self.fields) for t in _reverse(self.tokens)]
        self._rprog = rprog
        # the tokens whose end is a choice (fields, * and **/), for which the fill needs
        # the set of positions from which the rest can still match
        self._choice = [t.kind != "lit" and t.kind != "cilit" for t in self.tokens]
        self._lazy = [t.kind == "field" and t.lazy for t in self.tokens]

    def fullmatch(self, path: str) -> PathMatch | None:
        """The field values when the whole ``path`` matches, else None.

        Raises
        ------
        DataError
            A pattern that repeats fields needed more than :data:`MAX_STEPS` choices on
            this path (the message names the path and the pattern).
        """
        back = self._backward(path)
        if back is None:
            return None
        masks = _Masks(path)
        m = _masks(masks, self._spec)
        if not self._has_refs:
            return PathMatch(self._fill(masks, m, back))
        caps = self._choose(masks, m, back, 0, 0, {}, [MAX_STEPS])
        return None if caps is None else PathMatch(caps)

    def _backward(self, path: str) -> list[int] | None:
        """``b[i]`` (for tokens after a choice): the positions from which tokens ``i:`` can
        reach the end (a field used again: any text its first use allows); None when the
        path cannot match."""
        n = len(path)
        rm = _masks(_Masks(path[::-1]), self._rspec)
        sets = [1]
        s = 1
        for ops in self._rprog:
            s = _run(ops, rm, s)
            if not s:
                return None
            sets.append(s)
        if not (s >> n) & 1:
            return None
        width = n + 1
        t = len(self.tokens)
        out = [0] * (t + 1)
        for i in range(1, t + 1):
            if self._choice[i - 1]:  # reversed coordinates r are positions n - r
                out[i] = _reverse_bits(sets[t - i], width)
        return out

    def _candidates(self, i: int, ends: int) -> Iterator[int]:
        return _bits(ends) if self._lazy[i] else _bits_down(ends)

    def _fill(self, masks: _Masks, m: list[int], back: list[int]) -> dict[str, str]:
        caps: dict[str, str] = {}
        p = 0
        for i, t in enumerate(self.tokens):
            ends = _run(self._prog[i], m, 1 << p)
            if self._choice[i]:
                ends &= back[i + 1]
                q = (ends & -ends).bit_length() - 1 if self._lazy[i] else ends.bit_length() - 1
                if t.kind == "field":
                    caps[t.name] = masks.s[p:q]
                p = q
            else:
                p = ends.bit_length() - 1
        return caps

    def _forward(
        self, masks: _Masks, m: list[int], q: int, i: int, caps: Mapping[str, str]
    ) -> bool:
        s = 1 << q
        for j in range(i, len(self.tokens)):
            t = self.tokens[j]
            if t.kind == "ref" and t.name in caps:
                v = caps[t.name]
                if s.bit_count() <= 8:  # a few starts: compare there
                    s = sum(1 << (p + len(v)) for p in _bits(s) if masks.s.startswith(v, p))
                else:
                    s = (s & masks.text(v, False)) << len(v)
            else:
                s = _run(self._prog[j], m, s)
            if not s:
                return False
        return bool((s >> masks.n) & 1)

    def _choose(
        self,
        masks: _Masks,
        m: list[int],
        back: list[int],
        i: int,
        p: int,
        caps: dict[str, str],
        budget: list[int],
    ) -> dict[str, str] | None:
        if i == len(self.tokens):
            return caps if p == masks.n else None
        t = self.tokens[i]
        if t.kind == "ref":
            v = caps[t.name]
            ok = masks.s.startswith(v, p)
            return self._choose(masks, m, back, i + 1, p + len(v), caps, budget) if ok else None
        ends = _run(self._prog[i], m, 1 << p)
        if self._choice[i]:
            ends &= back[i + 1]
        for q in self._candidates(i, ends):
            budget[0] -= 1
            if budget[0] < 0:
                raise DataError(
                    f"{masks.s}: the pattern {self.pattern!r} allows too many ways to read "
                    f"this path (a field used twice); restrict its fields, e.g. {{spk:[^-]+}}"
                )
            nxt = {**caps, t.name: masks.s[p:q]} if t.kind == "field" else caps
            if self._forward(masks, m, q, i + 1, nxt):
                got = self._choose(masks, m, back, i + 1, q, nxt, budget)
                if got is not None:
                    return got
        return None


__all__ = ["MAX_STEPS", "Item", "PathMatch", "PathPattern", "Token"]
