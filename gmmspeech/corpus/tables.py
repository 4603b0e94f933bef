"""The one parser of Kaldi-style text tables.

Every table gmmspeech reads (``wav.scp``, ``utt2spk``, ``spk2utt``, ``utt2label``,
``utt2fold``, trials, scores, predictions) is UTF-8 text with one entry per line: a key,
then whitespace-separated fields (or, for ``wav.scp``, the rest of the line as one field).
:func:`read_table` reads any of them and checks, per line,

- the number of fields;
- that the key (or the first ``unique`` columns, e.g. model and test id of a trial) appears
  once;
- in a ``strict`` table (the files of a data directory): no empty line, no leading
  whitespace, keys sorted in byte order (``LC_ALL=C sort``);
- otherwise: empty lines are skipped, and with ``comments`` so are lines whose first
  non-blank character is ``#``.

A UTF-8 byte order mark at the start of a file is reported as such (editors on Windows add
one; Kaldi and gmmspeech ids cannot start with it). Every problem names ``file:line``.
Problems raise :class:`~gmmspeech.errors.DataError` at once, or are collected in a
:class:`Problems` so that a data directory reports all of them together.

This module sits below ``datadir`` and ``trials``, which both use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import DataError

_MAX_LISTED = 10
_BOM = "\ufeff"


class Problems:
    """Collects validation problems and raises them together.

    Parameters
    ----------
    where : str
        What the problems are about (a folder), the head of the message.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:_MAX_LISTED]
        more = len(self.items) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise DataError(
            f"{self.where}: {len(self.items)} problem(s):\n  " + "\n  ".join(shown) + tail
        )


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be an id of the table files (None when it can): empty, holding
    whitespace, or starting with '#', which every table reader takes for a comment."""
    if not value:
        return "is empty"
    if any(c.isspace() for c in value):
        return "holds whitespace; the table files separate fields by whitespace"
    if value.startswith("#"):
        return "starts with '#': the table files would read its lines as comments; rename it"
    return None


def _report(problems: Problems | None, msg: str) -> None:
    """Collect ``msg``, or raise it when nobody collects."""
    if problems is None:
        raise DataError(msg)
    problems.add(msg)


@dataclass(frozen=True)
class Row:
    """One entry of a table.

    Attributes
    ----------
    line : int
        1-based line number in the file.
    key : str
        The first field.
    fields : list of str
        The fields after the key.
    """

    line: int
    key: str
    fields: list[str]


def iter_lines(
    path: str | os.PathLike[str], name: str | None = None, problems: Problems | None = None
) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file with their 1-based numbers (line ends removed), read
    one at a time so that a file of millions of lines is never held whole.

    Lines end at ``\\n`` only (a ``\\r`` before it is removed). A leading byte order mark
    is reported (and skipped, so that the rest is still checked).
    """
    p = Path(path)
    label = str(p) if name is None else name
    try:
        f = open(p, "rb")
    except OSError as exc:
        raise DataError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    with f:
        for i, raw in enumerate(_raw_lines(f, label), 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{label}:{i}: not UTF-8 text ({exc}); save it as UTF-8") from None
            if i == 1 and line.startswith(_BOM):
                _report(
                    problems,
                    f"{label}:1: the file starts with a UTF-8 byte order mark (BOM); save it as "
                    f"UTF-8 without BOM (e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' {p.name}`)",
                )
                line = line[1:]
            yield i, line.rstrip("\n").rstrip("\r")


def _raw_lines(f: BinaryIO, label: str) -> Iterator[bytes]:
    try:
        yield from f
    except OSError as exc:
        raise DataError(f"{label}: cannot be read ({exc.strerror or exc})") from None


def read_lines(
    path: str | os.PathLike[str], name: str | None = None, problems: Problems | None = None
) -> list[tuple[int, str]]:
    """All of :func:`iter_lines` as a list."""
    return list(iter_lines(path, name, problems))


def _want(min_fields: int, max_fields: int | None) -> str:
    if max_fields == min_fields:
        return f"{min_fields + 1}"
    if max_fields is None:
        return f"at least {min_fields + 1}"
    return f"{min_fields + 1} to {max_fields + 1}"


def iter_table(
    path: str | os.PathLike[str],
    *,
    min_fields: int = 1,
    max_fields: int | None = 1,
    rest_is_one_field: bool = False,
    strict: bool = False,
    comments: bool = False,
    unique: int = 1,
    what: str = "id",
    layout: str | None = None,
    name: str | None = None,
    problems: Problems | None = None,
) -> Iterator[Row]:
    """Read a Kaldi-style table, one row at a time (see :func:`read_table`).

    Parameters
    ----------
    path : path-like
    min_fields, max_fields : int, int or None
        Allowed number of fields after the key (``None``: no upper limit).
    rest_is_one_field : bool
        Everything after the key is one field (a ``wav.scp`` path with spaces).
    strict : bool
        Data directory rules: no empty lines, no leading whitespace, keys sorted.
    comments : bool
        Skip lines starting with ``#`` (not allowed with ``strict``).
    unique : int
        The first ``unique`` columns of a line must not repeat (0: no check).
    what : str
        Name of the unique columns in messages ("id", "trial", ...).
    layout : str, optional
        The expected line shown in field-count messages, e.g. ``'<utt-id> <spk-id>'``.
    name : str, optional
        How the file is named in messages (default: its path).
    problems : Problems, optional
        Collect problems here instead of raising the first.

    Yields
    ------
    Row
        The well-formed lines, in file order.

    Raises
    ------
    DataError
        The first problem, as ``file:line: what is wrong; how to fix it`` (when
        ``problems`` is None); the file does not exist or is not UTF-8.
    """
    p = Path(path)
    label = str(p) if name is None else name
    if not p.is_file():
        raise DataError(f"{label}: no such file")
    first_line: dict[tuple[str, ...], int] = {}
    prev: str | None = None
    for lineno, line in iter_lines(p, label, problems):
        where = f"{label}:{lineno}"
        stripped = line.strip()
        if not stripped or (comments and stripped.startswith("#")):
            if strict and not stripped:
                _report(problems, f"{where}: empty line; delete it")
            continue
        if strict and line[0].isspace():
            _report(problems, f"{where}: line starts with whitespace; the id must come first")
            continue
        if rest_is_one_field:
            parts = stripped.split(None, 1)
            key, fields = parts[0], [parts[1].strip()] if len(parts) == 2 else []
        else:
            key, *fields = stripped.split()
        if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
            expected = f"'{layout}'" if layout else f"{_want(min_fields, max_fields)} fields"
            _report(
                problems,
                f"{where}: expected {expected}, got {len(fields) + 1} field(s): {stripped!r}",
            )
            continue
        if unique:
            ident = (key, *fields)[:unique]
            if ident in first_line:
                shown = repr(key) if unique == 1 else " ".join(ident)
                _report(
                    problems,
                    f"{where}: duplicate {what} {shown} (first at line {first_line[ident]}); "
                    f"remove or rename one",
                )
                continue
            first_line[ident] = lineno
        if strict and prev is not None and key < prev:
            _report(
                problems,
                f"{where}: not sorted ({key!r} after {prev!r}); sort the file with "
                f"`LC_ALL=C sort -k1,1 -o {p.name} {p.name}`",
            )
        prev = key
        yield Row(lineno, key, fields)


def read_table(path: str | os.PathLike[str], **options: Any) -> list[Row]:
    """All rows of a Kaldi-style table as a list; ``options`` as for :func:`iter_table`.

    Raises
    ------
    DataError
        The first problem, as ``file:line: what is wrong; how to fix it`` (when
        ``problems`` is None); the file does not exist or is not UTF-8.
    """
    return list(iter_table(path, **options))


__all__ = ["id_problem", "Problems", "Row", "iter_lines", "iter_table", "read_lines", "read_table"]
