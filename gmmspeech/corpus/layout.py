"""Corpus layouts: folders of audio files whose paths follow a pattern, and list files.

- :func:`compile_pattern` turns a layout pattern with named fields into a matcher that
  does not backtrack (:mod:`gmmspeech.corpus.pathmatch`). Field restrictions are a safe
  subset of regular expressions (character classes and ``? * +``; no groups, no
  alternation, no back-references).
- :func:`scan_audio` builds a :class:`~gmmspeech.corpus.datadir.DataDir` from the files under a
  folder whose relative paths match a pattern.
- :func:`read_list` and :func:`select_listed` keep the files named in list files (plain path
  lists, CSV files with a ``file`` column, or ``wav.scp``-style ``<id> <path>`` lists).

The functions log what they skip; they never print.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, DataError
from .datadir import DataDir, audio_file_problem
from .pathmatch import ANY, Item, PathPattern, Token
from .tables import id_problem, iter_lines

log = logging.getLogger(__name__)

#: File extensions (lower case, no dot) counted as audio when reporting skipped files.
AUDIO_EXTENSIONS = frozenset(
    {"wav", "flac", "mp3", "ogg", "oga", "opus", "sph", "nist", "aif", "aiff", "au", "m4a"}
)

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]+))?\}")
_FIELD_NAMES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")
_EXTENSION = re.compile(r"\.([A-Za-z0-9]+)$")
_SPECIAL = set("()|[]{}\\^$*+?.")
_CLASS_ESCAPES = set("dwsDWS")
_QUANTIFIERS = set("?*+")
_SAFE_RULE = (
    "literal characters, character classes like [0-9] or [A-Za-z_-] (also \\d, \\w, . ), "
    "each optionally followed by ?, * or +; no groups, alternation or anchors"
)


def is_audio_name(name: str) -> bool:
    """Whether a file name ends with one of :data:`AUDIO_EXTENSIONS` (any case)."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext in AUDIO_EXTENSIONS


def _field_items(name: str, rx: str) -> tuple[list[Item], bool]:
    """The items of a field restriction in the safe subset, and whether the field takes
    the shortest text (every quantifier lazy); ``.`` and negated classes never match
    ``/``."""

    def refuse(why: str) -> ConfigError:
        return ConfigError(
            f"pattern: field {{{name}:{rx}}}: {why}; a field restriction may use only {_SAFE_RULE}"
        )

    items: list[Item] = []
    lazy: list[bool] = []
    i = 0
    prev_quantifiable = False
    while i < len(rx):
        c = rx[i]
        if c == "[":
            end = i + 1
            if end < len(rx) and rx[end] == "^":
                end += 1
            if end < len(rx) and rx[end] == "]":
                end += 1
            while end < len(rx) and rx[end] != "]":
                if rx[end] == "\\":
                    end += 1
                elif rx[end] == "[":
                    raise refuse("'[' inside a character class")
                end += 1
            if end >= len(rx):
                raise refuse("unclosed character class")
            body = rx[i + 1 : end]
            items.append(Item("[^/" + body[1:] + "]" if body.startswith("^") else rx[i : end + 1]))
            i = end + 1
            prev_quantifiable = True
        elif c == "\\":
            if i + 1 >= len(rx):
                raise refuse("a trailing backslash")
            nxt = rx[i + 1]
            if nxt in _CLASS_ESCAPES or (not nxt.isalnum() and nxt != "_"):
                items.append(Item(rx[i : i + 2]))
            else:
                raise refuse(f"the escape \\{nxt} (back-references and anchors are not allowed)")
            i += 2
            prev_quantifiable = True
        elif c == ".":
            items.append(Item(ANY))
            i += 1
            prev_quantifiable = True
        elif c in _QUANTIFIERS:
            if not prev_quantifiable:
                raise refuse(f"{c!r} repeats nothing or another repetition")
            items[-1] = Item(items[-1].cls, c)
            i += 1
            lazy.append(i < len(rx) and rx[i] == "?")
            i += 1 if lazy[-1] else 0
            prev_quantifiable = False
        elif c in _SPECIAL:
            raise refuse(f"{c!r} is not allowed")
        else:
            items.append(Item(re.escape(c)))
            i += 1
            prev_quantifiable = True
    if not items:
        raise refuse("empty restriction")
    for it in items:
        try:
            re.compile(it.cls)
        except re.error as exc:
            raise refuse(f"invalid character class {it.cls!r} ({exc})") from None
    return items, bool(lazy) and all(lazy)


def compile_pattern(pattern: str) -> tuple[PathPattern, list[str]]:
    """Turn a layout pattern into a matcher that runs in linear time on any path.

    Parameters
    ----------
    pattern : str
        A path relative to the root with ``/`` separators and named fields, e.g.
        ``{label}/{spk}_NO_{round}.flac``, ``{digit}_{spk}_{idx}.wav`` or
        ``{spk}/{spk}-{chapter}-{utt}.flac``. A field ``{name}`` matches one or more
        characters other than ``/`` (as few as possible); ``{name:RESTRICTION}`` matches a
        restriction written in a safe subset of regular expressions: literal characters and
        character classes (``[0-9]``, ``[^_]``, ``\\d``, ``\\w``, ``.``), each optionally
        followed by ``?``, ``*`` or ``+`` (as many as possible; ``+?`` etc.: as few). Groups,
        alternation, anchors and back-references are refused. A field used twice must match
        the same text both times, and where it first appears it must be followed by a
        character it cannot match (``{spk}/``). ``*`` matches any characters except ``/``
        and ``**/`` any number of folders. A final file extension (``.wav``) matches in any
        case (``.WAV``, ``.Wav``). Matching does not backtrack
        (:mod:`gmmspeech.corpus.pathmatch`): its time grows linearly with the path.

    Returns
    -------
    matcher : PathPattern
        ``matcher.fullmatch(path)`` gives the field values of a whole relative path.
    fields : list of str
        Field names in order of first appearance.

    Raises
    ------
    ConfigError
        An absolute or empty pattern, unbalanced braces, no field, or a field restriction
        outside the safe subset (naming the field).
    """
    if not pattern or pattern.startswith("/"):
        raise ConfigError(f"pattern: must be a relative path pattern, got {pattern!r}")
    rest = _FIELD.sub("", pattern)
    if "{" in rest or "}" in rest:
        raise ConfigError(
            f"pattern: unbalanced braces in {pattern!r}; fields look like {{name}} or "
            f"{{name:[0-9]+}}"
        )
    ext = ""
    tail = _EXTENSION.search(pattern)
    if tail is not None and not _FIELD.search(pattern[tail.start() :]):
        ext, pattern_body = tail.group(1), pattern[: tail.start()]
    else:
        pattern_body = pattern
    tokens: list[Token] = []
    fields: list[str] = []
    pos = 0
    for m in _FIELD.finditer(pattern_body):
        tokens += _literal(pattern_body[pos : m.start()])
        name, rx = m.group(1), m.group(2)
        if name in fields:
            tokens.append(Token("ref", name=name))
        else:
            fields.append(name)
            items, lazy = _field_items(name, rx) if rx else ([Item(ANY, "+")], True)
            tokens.append(Token("field", name=name, items=tuple(items), lazy=lazy))
        pos = m.end()
    tokens += _literal(pattern_body[pos:])
    if ext:
        tokens.append(Token("cilit", text="." + ext))
    if not fields:
        raise ConfigError(f"pattern: {pattern!r} has no {{field}}; e.g. '{{spk}}/{{utt}}.wav'")
    _check_repeated(tokens)
    return PathPattern(pattern, tokens), fields


def _check_repeated(tokens: list[Token]) -> None:
    """A field used twice must end, at its first use, before a character it cannot match:
    its text is then found without trying every length."""
    used_again = {t.name for t in tokens if t.kind == "ref"}
    for i, t in enumerate(tokens):
        if t.kind != "field" or t.name not in used_again:
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        c = nxt.text[0] if nxt is not None and nxt.kind in ("lit", "cilit") else ""
        chars = {c.lower(), c.upper()} if c and nxt is not None and nxt.kind == "cilit" else {c}
        if not c or any(re.fullmatch(it.cls, ch) for it in t.items for ch in chars):
            raise ConfigError(
                f"pattern: field {{{t.name}}} is used twice; where it first appears it must be "
                f"followed by a character it cannot match, e.g. '{{{t.name}}}/' or "
                f"'{{{t.name}:[0-9]+}}-'"
            )


def _literal(text: str) -> list[Token]:
    tokens: list[Token] = []
    lit = ""
    i = 0
    while i < len(text):
        if text.startswith("**/", i) or text[i] == "*":
            if lit:
                tokens.append(Token("lit", text=lit))
                lit = ""
            glob = text.startswith("**/", i)
            tokens.append(Token("glob" if glob else "star"))
            i += 3 if glob else 1
        else:
            lit += text[i]
            i += 1
    if lit:
        tokens.append(Token("lit", text=lit))
    return tokens


def _token(value: str) -> str:
    """A field value usable inside an id or label (whitespace -> '_')."""
    return re.sub(r"\s+", "_", value.strip())


def _id_template(fields: list[str], spk: str | None, utt_id: str | None) -> str:
    if utt_id is None:
        order = ([spk] if spk else []) + [f for f in fields if f != spk]
        return "-".join("{" + f + "}" for f in order)
    unknown = set(_FIELD_NAMES.findall(utt_id)) - set(fields)
    if unknown:
        raise ConfigError(
            f"utt_id: template {utt_id!r} uses {sorted(unknown)}, which the pattern "
            f"does not define (fields: {fields})"
        )
    return utt_id


def scan_audio(
    root: str | os.PathLike[str],
    pattern: str,
    *,
    utt_id: str | None = None,
    spk_field: str | None = "spk",
    label_field: str | None = "label",
) -> DataDir:
    """Build a data directory from the audio files under ``root`` whose paths match a pattern.

    Parameters
    ----------
    root : path-like
        Folder to search (recursively).
    pattern : str
        Layout of the paths relative to ``root``; see :func:`compile_pattern`.
    utt_id : str, optional
        Template of utterance ids over the fields, e.g. ``"{spk}-{label}-{round}"``.
        Default: the speaker field, then every other field in pattern order, joined by
        ``-``. Whitespace in values becomes ``_``.
    spk_field : str or None
        Field holding the speaker. If the pattern has no such field, every utterance is its
        own speaker.
    label_field : str or None
        Field holding a class label written to ``utt2label`` (skipped when absent).

    Returns
    -------
    DataDir
        With absolute audio paths.

    Raises
    ------
    DataError
        No file matches, or two files get the same utterance id.

    Notes
    -----
    Skipped files are logged in groups: audio files (:data:`AUDIO_EXTENSIONS`, any case)
    that do not match the pattern, as a warning with their count and an example; the other
    files (``README.md``, lists), at INFO. A pattern that does not end with a literal
    extension (``{label}/**/{file}``) takes audio files only: other files it matches are
    skipped with a warning (hidden ones such as ``.DS_Store`` at INFO).
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base}: no such folder")
    regex, fields = compile_pattern(pattern)
    spk = spk_field if spk_field in fields else None
    label = label_field if label_field in fields else None
    template = _id_template(fields, spk, utt_id)
    # a pattern ending in a field ("{label}/**/{file}") would also take README.md or
    # .DS_Store from a user's folder and fail the extraction; one that names its extension
    # takes what it names
    audio_only = _EXTENSION.search(pattern) is None
    wav: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    utt2label: dict[str, str] = {}
    source: dict[str, str] = {}
    n_seen = 0
    skipped_audio: list[str] = []
    skipped_other: list[str] = []
    not_audio: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for fname in sorted(filenames):
            full = Path(dirpath) / fname
            rel = full.relative_to(base).as_posix()
            n_seen += 1
            m = regex.fullmatch(rel)
            if m is None:
                (skipped_audio if is_audio_name(fname) else skipped_other).append(rel)
                continue
            if audio_only and not is_audio_name(fname):
                (skipped_other if fname.startswith(".") else not_audio).append(rel)
                continue
            # a FIFO or device would block or never end the extraction; a broken link is
            # left to the extraction, which counts it as a failed file
            why = audio_file_problem(full) if full.exists() and not full.is_file() else None
            if why:
                raise DataError(f"{full}: matches the pattern but {why}; remove or rename it")
            values = {k: _token(v) for k, v in m.groupdict().items()}
            try:
                uid = template.format(**values)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"utt_id: bad template {template!r} ({exc})") from None
            named = [("speaker", values[spk])] if spk else []
            named += [("label", values[label])] if label else []
            for kind, value in [*named, ("utterance", uid)]:
                why = id_problem(value)
                if why:
                    raise DataError(f"{full}: its {kind} id {value!r} {why}")
            if uid in wav:
                raise DataError(
                    f"{base}: files {source[uid]!r} and {rel!r} both get utterance id "
                    f"{uid!r}; use more fields in the id template (--utt-id), e.g. "
                    f"{'-'.join('{' + f + '}' for f in fields)!r}"
                )
            wav[uid] = str(full.resolve())
            source[uid] = rel
            utt2spk[uid] = values[spk] if spk else uid
            if label:
                utt2label[uid] = values[label]
    if not wav:
        unmatched = skipped_audio or skipped_other
        example = f", e.g. {unmatched[0]!r}" if unmatched else ""
        raise DataError(
            f"{base}: no file matches the pattern {pattern!r} ({n_seen} files seen, "
            f"{len(skipped_audio)} of them audio{example}); the pattern is matched against "
            f"whole paths relative to {base}"
        )
    _log_skipped(base, pattern, n_seen, skipped_audio, skipped_other)
    if not_audio:
        log.warning(
            "%s: %d file(s) match the pattern %r but have no audio extension (%s); skipped "
            "(e.g. %r). To take them, end the pattern with their extension, e.g. %r",
            base,
            len(not_audio),
            pattern,
            ", ".join(sorted(AUDIO_EXTENSIONS)),
            not_audio[0],
            pattern + Path(not_audio[0]).suffix if Path(not_audio[0]).suffix else pattern,
        )
    if spk is None:
        log.info(
            "pattern %r has no {%s} field: each utterance is its own speaker", pattern, spk_field
        )
    return DataDir(wav, utt2spk, utt2label if label else None)


def _log_skipped(base: Path, pattern: str, n_seen: int, audio: list[str], other: list[str]) -> None:
    if audio:
        log.warning(
            "%s: %d of %d audio files do not match the pattern %r; skipped (e.g. %r)",
            base,
            len(audio),
            n_seen - len(other),
            pattern,
            audio[0],
        )
    if other:
        log.info("%s: %d non-audio file(s) skipped (e.g. %r)", base, len(other), other[0])


# ---------------------------------------------------------------------- selections
def read_list(path: Path, where: str, root: Path | None = None) -> set[str]:
    """The audio paths named by a list file.

    Formats, detected per file:

    - ``.csv``: the ``file`` column when the header has one, else the first column;
    - ``wav.scp``-style ``<id> <path>``: when the first non-empty line has two or more
      fields, its first field does not end with an audio extension and the rest of the line
      does (:func:`is_audio_name`); the path is then the rest of every line (spaces kept);
    - otherwise a plain list, one path per line: the whole line (spaces kept) when it
      ends with an audio extension, else its first field (further columns are ignored).

    A first line that names an existing file under ``root`` as a whole is a plain list,
    even when it also reads as ``<id> <path>`` (a path with a space).

    Returns
    -------
    set of str
        The paths in POSIX form.
    """
    if not path.is_file():
        raise DataError(f"{where}: list file {str(path)!r} does not exist")
    out: set[str] = set()
    if path.suffix.lower() == ".csv":
        reader = csv.reader(path.read_text(encoding="utf-8").splitlines())
        header = next(reader, None)
        col = 0
        if header is not None and "file" in header:
            col = header.index("file")
        elif header is not None and header:
            out.add(header[0].strip())
        for row in reader:
            if row:
                out.add(row[col].strip())
    else:
        lines = [(n, x.strip()) for n, x in iter_lines(path, str(path))]
        lines = [(n, x) for n, x in lines if x and not x.startswith("#")]
        first = lines[0][1].split(None, 1) if lines else []
        scp = (
            len(first) == 2
            and not is_audio_name(first[0])
            and is_audio_name(first[1])
            and not _names_a_file(root, lines[0][1])
        )
        for n, text in lines:
            parts = text.split(None, 1)
            if scp and len(parts) < 2:
                raise DataError(
                    f"{path}:{n}: '<id> <path>' expected (line 1 reads as a wav.scp "
                    f"list), got only {text!r}"
                )
            if scp:
                out.add(parts[1].strip())
            else:  # one path per line, spaces kept; else the first of several columns
                out.add(text if is_audio_name(text) else parts[0])
        if scp:
            log.info("%s: read as a wav.scp-style '<id> <path>' list", path)
    if not out:
        raise DataError(f"{where}: list file {str(path)!r} lists no file")
    return {Path(p).as_posix() for p in out}


def _names_a_file(root: Path | None, text: str) -> bool:
    if root is None:
        return False
    p = Path(text)
    return (p if p.is_absolute() else root / p).is_file()


def select_listed(
    data: DataDir, root: str | os.PathLike[str], lists: Sequence[str], where: str
) -> DataDir:
    """The utterances whose audio path, relative to ``root``, is in one of the list files.

    Parameters
    ----------
    data : DataDir
    root : path-like
        The corpus root; list files and listed relative paths are relative to it.
    lists : sequence of str
        List files (see :func:`read_list`).
    where : str
        Prefix of error messages (e.g. the config key).
    """
    base = Path(root)
    keep: set[str] = set()
    for item in lists:
        keep |= read_list(base / item, where, base)
    root_r = base.resolve()
    keep = {
        (Path(p).resolve().relative_to(root_r).as_posix() if Path(p).is_absolute() else p)
        for p in keep
        if not Path(p).is_absolute() or Path(p).resolve().is_relative_to(root_r)
    }
    chosen = []
    for utt in data.utt_ids:
        p = data.audio_path(utt).resolve()
        with contextlib.suppress(ValueError):
            if p.relative_to(root_r).as_posix() in keep:
                chosen.append(utt)
    if not chosen:
        raise DataError(
            f"{where}: none of the {len(data)} files found is listed in {', '.join(lists)} "
            f"(paths are relative to the corpus root)"
        )
    found = {data.audio_path(u).resolve().relative_to(root_r).as_posix() for u in chosen}
    lost = sorted(keep - found)
    if lost:
        log.warning(
            "%s: %d of %d listed paths match no audio file found by the pattern (e.g. %r)",
            where,
            len(lost),
            len(keep),
            lost[0],
        )
    return data.subset(chosen)


__all__ = [
    "AUDIO_EXTENSIONS",
    "compile_pattern",
    "is_audio_name",
    "read_list",
    "scan_audio",
    "select_listed",
]
