"""recipes/train_ubm_from_yaml.py: YAML -> data dir -> feature store -> UBM, on tiny audio."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf

from gmmspeech import DiagGMM, FeatureStore
from gmmspeech.config.loader import load_config
from gmmspeech.config.sections import FeatureConfig

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def _recipe() -> ModuleType:
    path = REPO / "recipes" / "train_ubm_from_yaml.py"
    spec = importlib.util.spec_from_file_location("train_ubm_from_yaml", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _corpus(root: Path) -> None:
    """3 speakers x 2 utterances of 1 s: noise through a speaker-specific resonance."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    for s, freq in enumerate((300.0, 900.0, 2000.0)):
        spk = f"s{s}"
        (root / "bg" / spk).mkdir(parents=True)
        for n in range(2):
            x = 0.1 * rng.standard_normal(SR) + 0.3 * np.sin(2 * np.pi * freq * t + n)
            sf.write(root / "bg" / spk / f"{spk}-{n}.wav", x.astype(np.float32), SR)


CONFIG = """\
name: tiny
data:
  root: corpus
  background: {path: bg, pattern: "{spk}/{spk}-{n}.wav"}
  targets: {path: tg, pattern: "{spk}/{spk}-{n}.wav"}
features:
  n_mfcc: 13
  deltas: 1
ubm:
  n_components: 4
  iterations_per_stage: [2]
  final_max_iterations: 3
"""


def test_recipe_trains_and_saves_a_ubm_from_yaml(tmp_path: Path) -> None:
    _corpus(tmp_path / "corpus")
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "out"
    recipe = _recipe()
    assert recipe.main([str(cfg_path), str(out), "--set", "ubm.random_state=1"]) == 0

    ubm = DiagGMM.load(out / "ubm.h5")
    with FeatureStore(out / "features.h5") as store:
        assert sorted(store) == [f"s{s}-{n}" for s in range(3) for n in range(2)]
        assert store.config == FeatureConfig(n_mfcc=13, deltas=1)
        frames = np.concatenate([store[u] for u in store]).astype(np.float64)
    assert (ubm.n_components, ubm.n_features) == (4, 26)
    assert ubm.weights.sum() == pytest.approx(1.0, abs=1e-9)
    # after an EM M-step, sum_k w_k mu_k = sum_k N_k/N * F_k/N_k is the mean of the data
    assert ubm.weights @ ubm.means == pytest.approx(frames.mean(axis=0), abs=1e-4)
    assert np.all(np.isfinite(ubm.variances)) and np.all(ubm.variances > 0)

    # an existing store: no extraction, the --set override is honoured
    again = tmp_path / "again"
    store = str(out / "features.h5")
    assert (
        recipe.main([str(cfg_path), str(again), "--store", store, "--set", "ubm.n_components=2"])
        == 0
    )
    assert not (again / "features.h5").exists()
    assert DiagGMM.load(again / "ubm.h5").n_components == 2
    assert load_config(cfg_path).ubm.n_components == 4
