"""One provenance record for every artefact kind (#18 point 2).

For each kind of :data:`gmmspeech.storage.lineage.KINDS` a case below makes a small artefact,
gives its consumer a parent of another origin (another UBM, TV model, feature config, system
or trials list), and expects a refusal naming what differs. A kind added to the registry
without a case here fails :func:`test_every_kind_has_a_tamper_case`; a check switched off
fails that kind's case.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_output_gate import W, _s
from test_output_gate import world as world  # the fixture

import gmmspeech
from gmmspeech import DiagGMM
from gmmspeech.cli.main import main
from gmmspeech.config.sections import FeatureConfig, to_dict
from gmmspeech.corpus.scorefiles import read_scores_header
from gmmspeech.decisions.heldout import HeldoutUBM, load_heldout, save_heldout
from gmmspeech.errors import DataError, ModelMismatchError
from gmmspeech.features.store import write_store
from gmmspeech.ivector.stats import StatsFile, compute_stats
from gmmspeech.ivector.tv import TotalVariability
from gmmspeech.mixture.speakermodels import ubm_fingerprint
from gmmspeech.storage.lineage import KINDS, NOT_ARTEFACTS, ArtefactKind

CMVN = FeatureConfig(n_mfcc=3, deltas=0)
NONE = FeatureConfig(n_mfcc=3, deltas=0, normalization="none")
IV2 = ["--set", "ivector.rank=2", "--set", "ivector.n_iter=1", "--set", "ivector.random_state=7"]


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a refused command wrote to stderr (log lines with a time are skipped)."""
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    lines = [x for x in lines if not re.match(r"^\d\d:\d\d:\d\d ", x)]
    assert len(lines) == 1, lines
    return lines[0]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], out: Path) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    assert not out.exists(), "a refused command wrote its output"
    return _err(capsys)


# ----------------------------------------------------------------- parents of another origin
@pytest.fixture(scope="module")
def other(world: W, tmp_path_factory: pytest.TempPathFactory) -> W:
    """Artefacts of another UBM, another TV model and another feature config than the
    world's, each made by the CLI."""
    root = tmp_path_factory.mktemp("other")
    o: W = {"root": root}
    rng = np.random.default_rng(1)
    ubm = DiagGMM.load(world["ubm"])
    DiagGMM(ubm.weights, ubm.means + rng.normal(0, 0.1, ubm.means.shape), ubm.variances).save(
        root / "ubm2.h5"
    )
    o |= {n: root / f for n, f in (("ubm2", "ubm2.h5"), ("models2", "m2.h5"))}
    o |= {n: root / f for n, f in (("scores2", "s2.txt"), ("tv2", "tv2.h5"), ("iv2", "iv2.h5"))}
    o |= {"backend2": root / "be2.h5"}
    steps = [
        ["enroll", *_s(o["ubm2"], world["feats"], world["enroll"], o["models2"]), "--no-progress"],
        ["score", *_s(o["ubm2"], o["models2"], world["feats"], world["trials"], o["scores2"])],
        ["train-tv", *_s(world["ubm"], world["feats"], o["tv2"]), *IV2],
        ["extract-ivectors", *_s(o["tv2"], world["feats"], o["iv2"])],
        [
            "train-backend",
            *_s(o["iv2"], world["enroll"], o["backend2"]),
            "--set",
            "backend.scorer=cosine",
        ],
    ]
    for argv in steps:
        assert main(argv) == 0, argv
    # features of two configs and a UBM of each (the world's UBM records none)
    frames = {f"u{i}": rng.normal(size=(60, 3)).astype(np.float32) for i in range(4)}
    for name, fc in (("cmvn", CMVN), ("none", NONE)):
        write_store(root / f"{name}.h5", frames, fc)
        DiagGMM(ubm.weights, ubm.means, ubm.variances, feature_config=to_dict(fc)).save(
            root / f"ubm_{name}.h5"
        )
    (root / "d").mkdir()
    (root / "d/utt2spk").write_text("u0 a\nu1 a\nu2 b\nu3 b\n")
    (root / "trials").write_text("a u2 nontarget\nb u3 target\n")
    return o


# --------------------------------------------------------------------------- the cases
def features(w: W, o: W, tmp: Path, capsys) -> None:
    """Features of another feature config than the UBM's: enroll refuses them."""
    out = tmp / "m.h5"
    r = o["root"]
    err = _refused(["enroll", *_s(r / "ubm_cmvn.h5", r / "none.h5", r / "d", out)], capsys, out)
    assert "normalization: 'none' here vs 'cmvn' in the UBM" in err and "none.h5" in err
    assert main(["enroll", *_s(r / "ubm_cmvn.h5", r / "cmvn.h5", r / "d", out)]) == 0


def ubm(w: W, o: W, tmp: Path, capsys) -> None:
    """A UBM whose training frames had another feature config than the features given."""
    out = tmp / "tv.h5"
    r = o["root"]
    argv = ["train-tv", *_s(r / "ubm_none.h5", r / "cmvn.h5", out), *IV2]
    err = _refused(argv, capsys, out)
    assert "normalization: 'cmvn' here vs 'none' in the UBM" in err


def heldout_ubm(w: W, o: W, tmp: Path, capsys) -> None:
    """A held-out UBM re-estimated from another UBM than the one given."""
    u1, u2 = DiagGMM.load(w["ubm"]), DiagGMM.load(o["ubm2"])
    save_heldout(HeldoutUBM(("spk0",), u1, ubm_fingerprint(u1)), tmp / "h.h5")
    assert load_heldout(tmp / "h.h5", u1).speakers == ("spk0",)
    with pytest.raises(ModelMismatchError, match="re-estimated from another UBM") as err:
        load_heldout(tmp / "h.h5", u2)
    assert ubm_fingerprint(u1)[:16] in str(err.value) and ubm_fingerprint(u2)[:16] in str(err.value)


def models(w: W, o: W, tmp: Path, capsys) -> None:
    """Models adapted from another UBM than the one given to score."""
    out = tmp / "s.txt"
    argv = ["score", *_s(o["ubm2"], w["models"], w["feats"], w["trials"], out), "--no-progress"]
    err = _refused(argv, capsys, out)
    assert str(w["models"]) in err and "UBM" in err


def statistics(w: W, o: W, tmp: Path, capsys) -> None:
    """Statistics of another UBM, and of another store's utterances."""
    u1, u2 = DiagGMM.load(w["ubm"]), DiagGMM.load(o["ubm2"])
    stats = compute_stats(u1, w["feats"], out=tmp / "st.h5")
    ids = list(stats.utt_ids)
    with pytest.raises(
        ModelMismatchError, match=f"made with the UBM of SHA-256 {ubm_fingerprint(u1)[:12]}"
    ):
        StatsFile(tmp / "st.h5", u2)
    src = StatsFile(tmp / "st.h5", u1)
    src.check_utterances(ids, "feats.h5")
    with pytest.raises(DataError, match=r"do not belong to other.h5: 1 utterance\(s\) not in it"):
        src.check_utterances(ids[1:], "other.h5")


def tv(w: W, o: W, tmp: Path, capsys) -> None:
    """A TV model given another UBM, or statistics of another UBM."""
    u1, u2 = DiagGMM.load(w["ubm"]), DiagGMM.load(o["ubm2"])
    with pytest.raises(ModelMismatchError, match="made with the UBM of SHA-256"):
        TotalVariability.load(w["tv"], u2)
    model = TotalVariability.load(w["tv"], u1)
    with pytest.raises(ModelMismatchError, match="statistics computed with UBM"):
        model.transform(compute_stats(u2, w["feats"]))


def _score_ivectors(w: W, backend: Path, ivectors: Path, out: Path) -> list[str]:
    return ["score-ivectors", *_s(backend, ivectors, w["enroll"], ivectors, w["trials"], out)]


def ivectors(w: W, o: W, tmp: Path, capsys) -> None:
    """i-vectors of another TV model than the back end's."""
    out = tmp / "s.txt"
    err = _refused(_score_ivectors(w, w["backend"], o["iv2"], out), capsys, out)
    assert "different total-variability models" in err and str(o["iv2"]) in err


def backend(w: W, o: W, tmp: Path, capsys) -> None:
    """A back end trained on i-vectors of another TV model than those scored."""
    out = tmp / "s.txt"
    err = _refused(_score_ivectors(w, o["backend2"], w["ivectors"], out), capsys, out)
    assert "different total-variability models" in err and str(o["backend2"]) in err
    assert main(_score_ivectors(w, o["backend2"], o["iv2"], out)) == 0  # its own: fine


def scores(w: W, o: W, tmp: Path, capsys) -> None:
    """Evaluation scores of another system than the calibration scores, and scores of
    another trials list."""
    out = tmp / "cal.txt"
    argv = ["evaluate", *_s(o["scores2"], w["trials"]), "--calibrate-on"]
    argv += [*_s(w["scores"], w["trials"]), "--write-calibrated", str(out)]
    err = _refused(argv, capsys, out)
    want = read_scores_header(w["scores"])["ubm"]
    assert f"ubm: {read_scores_header(o['scores2'])['ubm']} here vs {want} there" in err
    lines = w["trials"].read_text().splitlines()
    (tmp / "trials").write_text("\n".join([*lines, "spk0 spk9-t9 nontarget"]) + "\n")
    err = _refused(["evaluate", *_s(w["scores"], tmp / "trials")], capsys, tmp / "none")
    assert f"trial spk0 spk9-t9 has no score in {w['scores']} (1 of {len(lines) + 1} " in err


def calibration(w: W, o: W, tmp: Path, capsys) -> None:
    """A calibration applied to scores of another UBM than it was fitted on."""
    out = tmp / "llr.txt"
    err = _refused(
        ["calibrate", "--load", *_s(w["cal"], o["scores2"]), "-o", str(out)], capsys, out
    )
    assert f"{o['scores2']}: does not match what {w['cal']} records (ubm: " in err
    err = _refused(
        ["calibrate", "--load", *_s(w["cal"], w["ivscores"]), "-o", str(out)], capsys, out
    )
    assert "ubm: <not recorded> here vs " in err and "tv: " in err
    assert main(["calibrate", "--load", *_s(w["cal"], w["scores"]), "-o", str(out)]) == 0


def fusion(w: W, o: W, tmp: Path, capsys) -> None:
    """A fusion applied to a system it was not fitted on."""
    out = tmp / "fused.txt"
    argv = ["fuse", "--load", str(w["fusion"]), "--apply", *_s(o["scores2"], w["ivscores"])]
    argv += ["--trials", str(w["trials"]), "-o", str(out)]
    err = _refused(argv, capsys, out)
    assert f"{w['fusion']}: no scores file of its system system1 (ubm=" in err
    assert str(o["scores2"]) in err


#: kind -> its case. Every kind of the registry needs one.
CASES: dict[str, Callable[..., None]] = {
    "features": features,
    "ubm": ubm,
    "heldout-ubm": heldout_ubm,
    "models": models,
    "statistics": statistics,
    "tv": tv,
    "ivectors": ivectors,
    "backend": backend,
    "scores": scores,
    "calibration": calibration,
    "fusion": fusion,
}


# --------------------------------------------------------------------------- the tests
def test_every_kind_has_a_tamper_case() -> None:
    names = [k.name for k in KINDS]
    assert len(set(names)) == len(names), "a kind is listed twice"
    missing = sorted(set(names) - set(CASES))
    assert not missing, f"artefact kinds without a provenance check in test_lineage: {missing}"
    assert not set(CASES) - set(names), "a case of a kind the registry does not list"


def _resolve(dotted: str) -> object:
    """The object a dotted path names: a module attribute, or an attribute of one."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_every_file_format_is_a_registered_kind() -> None:
    """A new file format (a ``*FORMAT = "gmmspeech.X"`` constant) needs its kind listed."""
    root = Path(gmmspeech.__file__).parent
    defined = {
        m.group(1): str(path.relative_to(root))
        for path in root.rglob("*.py")
        for m in re.finditer(r'^[A-Z_]*FORMAT = "(gmmspeech\.\w+)"', path.read_text(), re.M)
    }
    assert len(defined) >= 10, defined  # the scan finds them
    listed = {f for k in KINDS for f in k.formats} | set(NOT_ARTEFACTS)
    missing = {f: where for f, where in defined.items() if f not in listed}
    assert not missing, f"file formats of no kind in gmmspeech.storage.lineage.KINDS: {missing}"


@pytest.mark.parametrize("k", KINDS, ids=[k.name for k in KINDS])
def test_the_registry_names_real_code(k: ArtefactKind) -> None:
    assert k.parents and k.records and k.consumers, k.name
    assert k.checkers, f"{k.name}: no code checks its provenance"
    for dotted in (*k.writers, *k.checkers):
        assert callable(_resolve(dotted)), dotted
    known = {x.name for x in KINDS} | {"audio", "trials"}
    assert set(k.parents) <= known, k.parents


@pytest.mark.parametrize("name", [k.name for k in KINDS])
def test_a_parent_of_another_origin_is_refused(world, other, name, tmp_path, capsys) -> None:
    CASES[name](world, other, tmp_path, capsys)
