"""A hostile user's pass over the CLI: run with ``python tests/adversarial_pass.py``.

Not a test module (pytest does not collect it): it builds the artefacts of every kind with
the CLI (the output-gate test's world), then runs each case below as a fresh
``python -m gmmspeech`` process and classes what happened:

* ``clear``: refused, exit 1, the last stderr line a one-line message, no traceback;
* ``handled``: exit 0 where that is right, with the result the case checks;
* ``silent``: exit 0 where a refusal was due, or a result that differs from the right one;
* ``traceback``, ``hang`` (over the case's time limit), ``loss`` (an input file changed).

Each case states the class it must get; the script prints one line per case and the counts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import test_output_gate as gate_test  # noqa: E402  (tests/ is not a package)


class _Factory:
    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        p = Path(tempfile.mkdtemp(prefix=name, dir=self.root))
        return p


@dataclass
class Case:
    name: str
    argv: Callable[[dict, Path], list[str]]
    expect: str  # "clear" or "handled"
    check: Callable[[dict, Path, subprocess.CompletedProcess], bool] | None = None
    timeout: float = 60.0


def run_cli(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            [sys.executable, "-m", "gmmspeech", *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def classify(case: Case, w: dict, tmp: Path, before: dict[Path, bytes]) -> tuple[str, str]:
    t0 = time.perf_counter()
    proc = run_cli(case.argv(w, tmp), tmp, case.timeout)
    took = time.perf_counter() - t0
    changed = [p for p, b in before.items() if not p.exists() or p.read_bytes() != b]
    if proc is None:
        return "hang", f"over {case.timeout:.0f} s"
    err = [x for x in proc.stderr.splitlines() if x.strip()]
    last = err[-1] if err else ""
    if changed:
        return "loss", f"changed: {changed[0]}"
    if "Traceback" in proc.stderr:
        return "traceback", last[:160]
    if proc.returncode != 0:
        return "clear", f"{took:.1f} s: {last[:160]}"
    if case.check is not None and not case.check(w, tmp, proc):
        return "silent", "exit 0 with a wrong result"
    if case.expect == "clear":  # a refusal was due
        return "silent", "exit 0 where a refusal was due"
    return "handled", f"{took:.1f} s"


# ------------------------------------------------------------------ broken inputs
def nan_copy(src: Path, dst: Path, dataset: str | None = None) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        names: list[str] = []
        f.visititems(
            lambda n, o: (
                names.append(n)
                if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" and o.size > 1
                else None
            )
        )
        for n in [dataset] if dataset else names[:1]:
            a = f[n][()].astype(np.float64)
            a.flat[a.size // 2] = np.nan
            del f[n]
            f.create_dataset(n, data=a)
    return dst


def bomb_backend(src: Path, dst: Path) -> Path:
    """The back end with its largest array replaced by a compressed one of 16000 x 16000."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        mats: list[tuple[int, int, str]] = []
        f.visititems(
            lambda n, o: (
                mats.append((o.ndim, o.size, n))
                if isinstance(o, h5py.Dataset) and o.dtype.kind == "f"
                else None
            )
        )
        ndim, _, name = max(mats)
        shape = (16000, 16000) if ndim == 2 else (16000 * 16000,)
        del f[name]
        f.create_dataset(name, shape=shape, dtype="f8", compression="gzip", fillvalue=0)
    return dst


def shuffled(src: Path, dst: Path, seed: int = 0) -> Path:
    lines = src.read_text().splitlines()
    head = [x for x in lines if x.startswith("#")]
    body = [x for x in lines if not x.startswith("#")]
    order = np.random.default_rng(seed).permutation(len(body))
    dst.write_text("\n".join(head + [body[i] for i in order]) + "\n")
    return dst


def same_file(a: str, b: str) -> Callable[[dict, Path, subprocess.CompletedProcess], bool]:
    def check(w: dict, tmp: Path, proc: subprocess.CompletedProcess) -> bool:
        ra = {
            tuple(x.split()[:2]): x.split()[2]
            for x in (tmp / a).read_text().splitlines()
            if x and not x.startswith("#")
        }
        rb = {
            tuple(x.split()[:2]): x.split()[2]
            for x in (tmp / b).read_text().splitlines()
            if x and not x.startswith("#")
        }
        return ra == rb

    return check


def S(*p: object) -> list[str]:
    return [str(x) for x in p]


def build_cases(w: dict, tmp: Path) -> list[Case]:
    foreign = tmp / "notes.txt"
    foreign.write_text("my notes\n")
    const = tmp / "const.txt"
    const.write_text(
        "".join(
            f"{x.split()[0]} {x.split()[1]} 1.5\n"
            for x in Path(w["trials"]).read_text().splitlines()
        )
    )
    iv_tv2 = tmp / "tv2.h5"
    nan_tv = nan_copy(w["tv"], tmp / "tv_nan.h5")
    bomb = bomb_backend(w["backend"], tmp / "backend_bomb.h5")
    with h5py.File(w["feats"], "r") as f:
        # a test utterance the trials use (an enrolment one is never read by score)
        first_utt = "utts/" + next(u for u in sorted(f["utts"]) if "-t" in u)
    nan_feats = nan_copy(w["feats"], tmp / "feats_nan.h5", first_utt)
    shuffled(w["scores"], tmp / "scores_shuf.txt")
    bad_cfg = tmp / "bomb.yaml"
    bad_cfg.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    )
    hash_corpus = tmp / "hashcorpus"
    for spk in ("#a", "b1"):
        (hash_corpus / spk).mkdir(parents=True)
        shutil.copyfile(next(Path(w["audio"]).rglob("*.wav")), hash_corpus / spk / "u1.wav")
    many = tmp / "many"
    for i in range(223):
        d = many / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{'x' * 40}-{i}-{'y' * 40}.wav").write_bytes(b"")
    fake_mp3 = tmp / "mp3data"
    (fake_mp3 / "s1").mkdir(parents=True)
    (fake_mp3 / "s1" / "a.wav").write_bytes(b"\xff\xfb\x90\x00" * 64 + b"junk" * 100)
    return [
        # ---------------------------------------------------------------- data loss
        Case(
            "calibrate --save onto its input scores",
            lambda w, t: [
                "calibrate",
                "--train",
                *S(w["scores"], w["trials"]),
                "--save",
                str(w["scores"]),
            ],
            "clear",
        ),
        Case(
            "calibrate --save onto its trials",
            lambda w, t: [
                "calibrate",
                "--train",
                *S(w["scores"], w["trials"]),
                "--save",
                str(w["trials"]),
            ],
            "clear",
        ),
        Case(
            "calibrate --load -o onto its input",
            lambda w, t: ["calibrate", "--load", *S(w["cal"], w["scores"]), "-o", str(w["scores"])],
            "clear",
        ),
        Case(
            "calibrate -o onto a user's file",
            lambda w, t: ["calibrate", "--load", *S(w["cal"], w["scores"]), "-o", str(foreign)],
            "clear",
        ),
        Case(
            "score output onto the trials",
            lambda w, t: ["score", *S(w["ubm"], w["models"], w["feats"], w["trials"], w["trials"])],
            "clear",
        ),
        Case(
            "enroll output onto the features",
            lambda w, t: [
                "enroll",
                *S(w["ubm"], w["feats"], w["enroll"], w["feats"]),
                "--no-progress",
            ],
            "clear",
        ),
        Case(
            "train-tv output onto the UBM",
            lambda w, t: ["train-tv", *S(w["ubm"], w["feats"], w["ubm"]), *gate_test.IV],
            "clear",
        ),
        Case(
            "fuse -o onto an input scores file",
            lambda w, t: [
                "fuse",
                "--load",
                *S(w["fusion"]),
                "--apply",
                *S(w["scores"], w["ivscores"]),
                "--trials",
                str(w["trials"]),
                "-o",
                str(w["scores"]),
            ],
            "clear",
        ),
        Case(
            "bench --json onto a user's file",
            lambda w, t: [
                "bench",
                "em",
                "--n",
                "300",
                "--d",
                "2",
                "--k",
                "2",
                "--repeat",
                "1",
                "--json",
                str(foreign),
            ],
            "clear",
        ),
        Case(
            "fusion run --out an input experiment",
            lambda w, t: [
                "run",
                str(w["fusion_cfg"]),
                "--out",
                str(w["experiment"]),
                "--no-progress",
            ],
            "clear",
        ),
        # ---------------------------------------------------------------- silent results
        Case(
            "score-ivectors with enrolment i-vectors of another TV",
            lambda w, t: [
                "score-ivectors",
                *S(w["backend"], iv_tv2, w["enroll"], w["ivectors"], w["trials"], t / "o1.txt"),
            ],
            "clear",
        ),
        Case(
            "extract-ivectors with a TV holding one NaN",
            lambda w, t: ["extract-ivectors", *S(nan_tv, w["feats"], t / "o2.h5")],
            "clear",
        ),
        # the issue accepts "refused, or flagged as carrying no information, never a fit"
        Case(
            "calibrate constant scores",
            lambda w, t: [
                "calibrate",
                "--train",
                *S(const, w["trials"]),
                "--save",
                str(t / "o3.json"),
            ],
            "handled",
            lambda w, t, p: "carry no information" in p.stderr and "not calibrating" in p.stdout,
        ),
        Case(
            "calibration of GMM scores applied to i-vector scores",
            lambda w, t: [
                "calibrate",
                "--load",
                *S(w["cal"], w["ivscores"]),
                "-o",
                str(t / "o4.txt"),
            ],
            "clear",
        ),
        Case(
            "fuse --apply with the files swapped",
            lambda w, t: [
                "fuse",
                "--load",
                str(w["fusion"]),
                "--apply",
                *S(w["ivscores"], w["scores"]),
                "--trials",
                str(w["trials"]),
                "-o",
                str(t / "o5.txt"),
            ],
            "handled",
            same_file("o5.txt", str(Path(w["root"]) / "fused.txt")),
        ),
        Case(
            "evaluate on shuffled score lines",
            lambda w, t: [
                "evaluate",
                *S(t / "scores_shuf.txt", w["trials"]),
                "--json",
                str(t / "o6.json"),
            ],
            "handled",
            lambda w, t, p: json.loads((t / "o6.json").read_text())["raw"]["eer"] == _eer(w, t),
        ),
        Case(
            "prepare a speaker id read as a comment",
            lambda w, t: [
                "prepare",
                str(hash_corpus),
                str(t / "o7"),
                "--pattern",
                "{spk}/{utt}.wav",
            ],
            "clear",
        ),
        Case(
            "score with features of a NaN frame",
            lambda w, t: ["score", *S(w["ubm"], w["models"], nan_feats, w["trials"], t / "o8.txt")],
            "clear",
        ),
        # ---------------------------------------------------------------- hangs, memory
        # allowed syntax that backtracked for > 180 s before: must finish (or refuse) fast
        Case(
            "12 greedy fields over 223 files",
            lambda w, t: [
                "prepare",
                str(many),
                str(t / "o9"),
                "--pattern",
                "d{a}/" + "".join("{f" + str(i) + ":.*}" for i in range(12)) + ".wav",
            ],
            "handled",
            timeout=10,
        ),
        Case(
            "back end with a compressed 16000x16000 matrix",
            lambda w, t: [
                "score-ivectors",
                *S(bomb, w["ivectors"], w["enroll"], w["ivectors"], w["trials"], t / "o10.txt"),
            ],
            "clear",
            timeout=30,
        ),
        Case(
            "a YAML alias bomb as config",
            lambda w, t: [
                "score",
                *S(w["ubm"], w["models"], w["feats"], w["trials"], t / "o11.txt"),
                "--config",
                str(bad_cfg),
            ],
            "clear",
            timeout=30,
        ),
        # ---------------------------------------------------------------- unclear
        Case(
            "--set with a YAML 1.2 float",
            lambda w, t: [
                "score",
                *S(w["ubm"], w["models"], w["feats"], w["trials"], t / "o12.txt"),
                "--set",
                "scoring.top_c=2",
                "--set",
                "ubm.tolerance=1e-4",
            ],
            "handled",
        ),
        Case(
            "--set of an unknown key",
            lambda w, t: [
                "score",
                *S(w["ubm"], w["models"], w["feats"], w["trials"], t / "o13.txt"),
                "--set",
                "scoring.topc=2",
            ],
            "clear",
        ),
        Case(
            "models enrolled on another UBM",
            lambda w, t: [
                "score",
                *S(t / "ubm2.h5", w["models"], w["feats"], w["trials"], t / "o14.txt"),
            ],
            "clear",
        ),
        Case(
            "an empty trials file",
            lambda w, t: [
                "score",
                *S(w["ubm"], w["models"], w["feats"], t / "empty_trials", t / "o15.txt"),
            ],
            "clear",
        ),
        Case(
            "a truncated UBM",
            lambda w, t: [
                "score",
                *S(t / "ubm_cut.h5", w["models"], w["feats"], w["trials"], t / "o16.txt"),
            ],
            "clear",
        ),
        Case(
            "MP3 bytes inside a .wav",
            lambda w, t: ["extract", *S(t / "o17dd", t / "o17.h5"), "--no-progress"],
            "clear",
        ),
        Case(
            "global option after the subcommand",
            lambda w, t: [
                "bench",
                "em",
                "--n",
                "300",
                "--d",
                "2",
                "--k",
                "2",
                "--repeat",
                "1",
                "--log-level",
                "WARNING",
            ],
            "handled",
        ),
    ]


def _eer(w: dict, t: Path) -> float:
    proc = run_cli(["evaluate", *S(w["scores"], w["trials"]), "--json", str(t / "ref.json")], t, 60)
    assert proc is not None and proc.returncode == 0, proc
    return json.loads((t / "ref.json").read_text())["raw"]["eer"]


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="adversarial-"))
    w = gate_test.world._get_wrapped_function()(_Factory(root))
    tmp = root / "cases"
    tmp.mkdir()
    cases = build_cases(w, tmp)
    # inputs derived with the CLI itself: another TV, another UBM, cut files
    assert (
        run_cli(
            [
                "train-tv",
                *S(w["ubm"], w["feats"], tmp / "tv2.h5"),
                *gate_test.IV,
                "--set",
                "ivector.random_state=7",
            ],
            tmp,
            120,
        ).returncode
        == 0
    )
    assert (
        run_cli(
            ["extract-ivectors", *S(tmp / "tv2.h5", w["feats"], tmp / "iv2.h5")], tmp, 120
        ).returncode
        == 0
    )
    (tmp / "tv2.h5").rename(tmp / "tv2_model.h5")
    (tmp / "iv2.h5").rename(tmp / "tv2.h5")  # the cases name the foreign i-vectors tv2.h5
    rng = np.random.default_rng(1)
    with h5py.File(w["ubm"], "r") as f:
        k, d = f["means"].shape
    from gmmspeech.mixture.gmm import DiagGMM

    DiagGMM(np.full(k, 1 / k), rng.normal(size=(k, d)), np.ones((k, d))).save(tmp / "ubm2.h5")
    (tmp / "empty_trials").write_text("")
    data = Path(w["ubm"]).read_bytes()
    (tmp / "ubm_cut.h5").write_bytes(data[: len(data) // 2])
    dd = tmp / "o17dd"
    dd.mkdir()
    (dd / "wav.scp").write_text(f"u1 {tmp / 'mp3data' / 's1' / 'a.wav'}\n")
    (dd / "utt2spk").write_text("u1 s1\n")
    counts: Counter[str] = Counter()
    for case in cases:
        before = snapshot(Path(w["root"]))
        got, detail = classify(case, w, tmp, before)
        ok = got == case.expect
        counts[got] += 1
        print(f"{'ok ' if ok else 'BAD'} {got:9s} {case.name}: {detail}")
    print("counts:", dict(counts))
    bad = sum(v for k, v in counts.items() if k in ("silent", "hang", "loss", "traceback"))
    print(f"{len(cases)} cases; silent/hang/loss/traceback: {bad}")
    shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    raise SystemExit(main())
