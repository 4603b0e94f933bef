"""Bad input to every subcommand: one line on stderr, exit 1, never a traceback.

Each input file of every case of :data:`test_output_gate.CASES` is replaced in turn by a
broken copy: empty, truncated to half its bytes, holding a NaN, and with the main array of
the wrong rank (for text files: a line with a wrong number of fields). Also: the message
after an interrupt says whether the command resumes, and the temporaries of a killed run
are removed by the next one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_output_gate import CASES, W, _inputs
from test_output_gate import world as world  # the fixture

from gmmspeech.cli.main import main

VARIANTS = ("empty", "truncated", "nan", "rank")


def _float_arrays(f: h5py.File) -> list[str]:
    """The float datasets of 2 or more dimensions, or else the largest float dataset."""
    found: list[tuple[int, int, str]] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
            found.append((obj.ndim, obj.size, name))

    f.visititems(visit)
    arrays = [name for ndim, _, name in found if ndim >= 2]
    return arrays or [max(found)[2]] if found else []


def break_file(src: Path, dst: Path, how: str) -> bool:
    """Write a broken copy of ``src`` to ``dst``; False when ``how`` does not apply."""
    data = src.read_bytes()
    if how == "empty":
        dst.write_bytes(b"")
    elif how == "truncated":
        dst.write_bytes(data[: len(data) // 2])
    elif data.startswith(b"\x89HDF"):
        shutil.copyfile(src, dst)
        with h5py.File(dst, "r+") as f:
            names = _float_arrays(f)
            if not names:
                return False
            for name in names:  # every array: whichever the command reads is broken
                a = f[name][()]
                del f[name]
                if how == "nan":
                    a = a.astype(np.float64)
                    a.flat[a.size // 2] = np.nan
                    f.create_dataset(name, data=a)
                else:  # one axis more
                    f.create_dataset(name, data=a[..., None])
    elif src.suffix == ".json":
        d = json.loads(data)
        key = next((k for k, v in d.items() if isinstance(v, float)), None)
        if key is None:
            return False
        d[key] = float("nan") if how == "nan" else [[d[key]]]
        dst.write_text(json.dumps(d))
    else:
        lines = data.decode().splitlines()
        rows = [i for i, x in enumerate(lines) if x.strip() and not x.startswith("#")]
        i = rows[len(rows) // 2]
        f = lines[i].split()
        if how == "nan":
            if not re.fullmatch(r"-?[0-9.eE+-]+", f[-1]):
                return False
            f[-1] = "nan"
        else:
            f.append("extra")
        lines[i] = " ".join(f)
        dst.write_text("\n".join(lines) + "\n")
    return True


def _files(world: W, command: str, i: int) -> list[str]:
    """The input files (not folders) of a case, and the files inside its input folders."""
    probe = {s: "OUT" for s in CASES[command][i].slots}
    out = []
    for p in _inputs(world, CASES[command][i].argv(world, probe)):
        if os.path.isfile(p):
            out.append(p)
        elif command not in ("prepare", "run", "demo"):
            out += [str(q) for q in sorted(Path(p).iterdir()) if q.is_file()]
    return out


CASE_IDS = [(c, i) for c, cases in CASES.items() for i in range(len(cases))]


@pytest.mark.parametrize(("command", "i"), CASE_IDS, ids=[f"{c}-{i}" for c, i in CASE_IDS])
def test_broken_inputs_give_one_line(world, command, i, tmp_path, capsys, monkeypatch) -> None:
    case = CASES[command][i]
    files = _files(world, command, i)
    if not files:
        pytest.skip(f"{command} reads no file of the world")
    failures = []
    for k, original in enumerate(files):
        for how in VARIANTS:
            if Path(original).suffix == ".yaml" or (how == "rank" and original.endswith("wav.scp")):
                continue  # configs have their own tests; a path may hold a space
            # the broken copy takes the original's place in a copy of the world
            root = tmp_path / f"w{k}-{how}-{Path(original).name}"
            shutil.copytree(
                world["root"], root, symlinks=True, ignore=shutil.ignore_patterns("out")
            )
            moved = {k: root / Path(v).relative_to(world["root"]) for k, v in world.items()
                     if str(v).startswith(str(world["root"]))}  # fmt: skip
            target = root / Path(original).relative_to(world["root"])
            if not break_file(Path(original), target, how):
                continue
            outs = {s: str(root / "out" / s) for s in case.slots}
            (root / "out").mkdir()
            monkeypatch.chdir(root / "out")
            capsys.readouterr()
            try:
                code = main(case.argv(moved, outs))
            except BaseException as exc:  # a traceback
                failures.append(f"{how} {target.name}: {type(exc).__name__}: {exc}")
                continue
            err = [
                x for x in capsys.readouterr().err.splitlines()
                if x.strip() and not re.search(r"\d+/\d+ \[|^\d\d:\d\d:\d\d ", x)
            ]  # fmt: skip
            # one error line; a data dir's problems follow it indented, one per line
            head = [x for x in err if not x.startswith("  ")]
            if code != 1 or len(head) != 1 or "error:" not in head[0]:
                failures.append(f"{how} {target.name}: exit {code}, stderr {head}")
    assert not failures, "\n".join(failures)


def test_ivectors_of_another_rank_than_the_back_end(world, tmp_path, capsys) -> None:
    from gmmspeech.ivector.tv import IVectorSet

    iv = IVectorSet.load(world["ivectors"])
    wide = tmp_path / "iv5.h5"
    IVectorSet(iv.utt_ids, np.random.default_rng(0).normal(size=(len(iv.utt_ids), 5))).save(wide)
    for enroll, test in ((wide, world["ivectors"]), (world["ivectors"], wide)):
        argv = ["score-ivectors", str(world["backend"]), str(enroll), str(world["enroll"])]
        argv += [str(test), str(world["trials"]), str(tmp_path / "s.txt")]
        capsys.readouterr()
        assert main(argv) == 1
        err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
        assert len(err) == 1 and f"{wide}: i-vectors of dimension 5" in err[0], err
        assert "takes dimension 2" in err[0]


def test_an_interrupted_train_tv_does_not_promise_to_resume(world, tmp_path, capsys, monkeypatch):
    from gmmspeech.ivector.tv import TotalVariability

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(TotalVariability, "fit", interrupted)
    out = tmp_path / "tv.h5"
    argv = ["train-tv", str(world["ubm"]), str(world["feats"]), str(out), "--set", "ivector.rank=2"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "resume" not in err and "rerun to start again" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # its scratch is gone
