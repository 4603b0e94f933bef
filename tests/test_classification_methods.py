"""Classification back ends end to end, the feature presets, the your-own-sounds recipe on a
miniature folder, and ``gmmspeech bench classify`` against scikit-learn computed here."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gmmspeech.cli.main import main
from gmmspeech.config.loader import load_config
from gmmspeech.config.sections import FeatureConfig
from gmmspeech.errors import ConfigError

SR = 16000
RECIPE = (
    Path(__file__).resolve().parents[1] / "recipes/audio_classification/your_own_sounds/config.yaml"
)
TINY = (
    "--set",
    "ubm.n_components=4",
    "--set",
    "ubm.iterations_per_stage=[1]",
    "--set",
    "ubm.final_max_iterations=2",
    "--set",
    "features.n_mfcc=13",
    "--set",
    "features.deltas=0",
    "--set",
    "scoring.top_c=2",
)


def _sound(c: int, i: int, seconds: float = 0.5) -> np.ndarray:
    """Class ``c``: noise through a resonance at a class-specific frequency, with a level
    and a fade that differ per class (what the `sounds` preset keeps)."""
    rng = np.random.default_rng(100 * c + i)
    n = int(seconds * SR)
    f0 = (400, 1500, 3500)[c] * (1 + 0.03 * i)
    t = np.arange(n) / SR
    x = np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) + 0.3 * rng.standard_normal(n)
    return (0.05 * (c + 1) * x * np.linspace(1, 0.2 * c + 0.1, n)).astype(np.float32)


def make_sounds(root: Path, n_per_class: int = 5) -> Path:
    """``<class>/**/<file>`` in several formats and folder depths."""
    for c, name in enumerate(("bell", "hum", "hiss")):
        for i in range(n_per_class):
            sub = root / name / ("take2" if i % 2 else "") / ("deep" if i % 3 == 2 else "")
            sub.mkdir(parents=True, exist_ok=True)
            ext = ("wav", "flac", "ogg")[i % 3]
            sf.write(sub / f"{name}{i}.{ext}", _sound(c, i), SR)
    return root


def test_presets_fill_what_the_config_does_not_set(caplog) -> None:
    cls = ["task=classification", "data.dataset.pattern={label}/{f}.wav"]
    with caplog.at_level(logging.INFO, logger="gmmspeech"):
        cfg = load_config(None, cls)
    assert (cfg.features.vad, cfg.features.normalization) == ("none", "none")
    assert "features: preset 'sounds'" in caplog.text
    cfg = load_config(None, [*cls, "features.normalization=cmn"])  # the config's value wins
    assert (cfg.features.vad, cfg.features.normalization) == ("none", "cmn")
    cfg = load_config(None, [*cls, "features.preset=speech"])
    assert cfg.features == FeatureConfig()  # speech is the FeatureConfig defaults
    with pytest.raises(ConfigError, match=r"features.preset: expected one of \('speech', 'sou"):
        load_config(None, [*cls, "features.preset=music"])
    with pytest.raises(ConfigError, match=r"classification.method: .*'llr'"):
        load_config(None, [*cls, "classification.method=svm"])


@pytest.mark.parametrize(
    ("method", "backend"),
    [("llr", "local"), ("supervector", "processes"), ("ivector", "local")],
)
def test_back_ends_report_the_same_metrics(
    tmp_path: Path, monkeypatch, method: str, backend: str
) -> None:
    root = make_sounds(tmp_path / "sounds")
    out = tmp_path / "exp"
    extra = ["--set", f"classification.method={method}", "--set", f"compute.backend={backend}"]
    if method == "ivector":
        extra += ["--set", "ivector.rank=4", "--set", "ivector.n_iter=2"]
    argv = ["run", str(RECIPE), "--out", str(out), "--no-progress", *TINY, *extra]
    monkeypatch.setenv("SOUNDS", str(root))
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    rows = [line.split() for line in (out / "scores/predictions.txt").read_text().splitlines()]
    assert len(rows) == 15
    true, pred = [r[1] for r in rows], [r[2] for r in rows]
    assert res["accuracy"] == pytest.approx(
        np.mean([a == b for a, b in zip(true, pred, strict=True)])
    )
    recall = {
        c: np.mean([p == c for t, p in zip(true, pred, strict=True) if t == c]) for c in set(true)
    }
    assert res["per_class_recall"] == pytest.approx(recall)
    assert res["balanced_accuracy"] == pytest.approx(np.mean(list(recall.values())))
    cm = np.array(res["confusion_matrix"])
    assert cm.sum() == 15 and np.trace(cm) == sum(a == b for a, b in zip(true, pred, strict=True))
    assert res["accuracy"] >= 0.6, res  # three different sounds (chance: 1/3)
    record = json.loads((out / "stages/05_score.json").read_text())
    assert record["info"]["method"] == method


def test_bench_classify_baselines_match_sklearn(tmp_path: Path, capsys, monkeypatch) -> None:
    import librosa

    root = make_sounds(tmp_path / "sounds", n_per_class=6)
    out, js = tmp_path / "exp", tmp_path / "bench.json"
    monkeypatch.setenv("SOUNDS", str(root))
    rc = main(["bench", "classify", str(RECIPE), "--out", str(out), "--json", str(js), *TINY])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mfcc+logistic" in text and "gmmspeech (llr)" in text
    got = json.loads(js.read_text())["systems"]
    # the oracle: the same baselines written out with librosa and scikit-learn here, on the
    # experiment's own files and folds
    wav = dict(line.split(" ", 1) for line in (out / "data/all/wav.scp").read_text().splitlines())
    fold = dict(line.split() for line in (out / "data/all/utt2fold").read_text().splitlines())
    ids = sorted(wav)
    feats = []
    for u in ids:
        y, sr = librosa.load(wav[u], sr=SR)
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        feats.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    x, labels = np.array(feats), np.array([u.split("-")[0] for u in ids])
    cv = PredefinedSplit([int(fold[u]) for u in ids])
    for name, model in (
        ("mfcc+logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))),
        ("mfcc+random_forest", RandomForestClassifier(n_estimators=500, random_state=0)),
    ):
        acc = np.mean(cross_val_predict(model, x, labels, cv=cv) == labels)
        assert got[name]["accuracy"] == pytest.approx(acc)
    res = json.loads((out / "results.json").read_text())
    assert got["gmmspeech (llr)"]["accuracy"] == res["accuracy"]
