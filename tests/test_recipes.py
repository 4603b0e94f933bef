"""Every recipe runs (at small CI settings) so that it cannot rot.

The recipes read ../shared/data (developers and CI only); without it they skip with a
reason. The full-setting numbers are in each recipe's README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_corpus_recipes import MINIATURE_VARIANTS, MINIATURES

from gmmspeech.cli.main import main

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
SMALL = [
    "--set",
    "ubm.n_components=16",
    "--set",
    "ubm.iterations_per_stage=[1, 2, 2, 2]",
    "--set",
    "ubm.final_max_iterations=3",
    "--set",
    "compute.backend=processes",
    "--set",
    "compute.n_workers=2",
]

CASES = {
    # (recipe folder, extra overrides, check on results.json)
    "speaker_verification/librispeech_samples": (
        ["--set", "data.background.max_speakers=80"],
        lambda r: r["n_trials"] == 500 and r["n_target"] == 50 and r["eer"] < 0.1,
    ),
    "speaker_verification/arabic_speech_commands": (
        ["--set", "data.background.max_speakers=6", "--set", "data.targets.max_speakers=4"],
        # 4 speakers x 80 test clips against 4 models
        lambda r: r["n_trials"] == 4 * 320 and r["n_target"] == 320 and r["eer"] < 0.35,
    ),
    "audio_classification/environmental_sounds": (
        [],
        lambda r: r["n_test"] == 223 and r["n_classes"] == 45 and r["accuracy"] > 0.5,
    ),
    "audio_classification/fsdd_digits": (
        [
            "--set",
            "data.dataset.max_per_speaker=60",
            "--set",
            "data.dataset.utt_id={spk}-{idx}-{label}",
        ],
        # idx 0, 1, 10..13 of every digit: 60 clips per speaker, 6 leave-one-speaker-out folds
        lambda r: r["n_test"] == 360 and r["n_classes"] == 10 and r["accuracy"] > 0.3,
    ),
}


#: Variants of a recipe (``config_<variant>.yaml`` beside its ``config.yaml``), run like CASES.
VARIANTS = {
    "speaker_verification/arabic_speech_commands/config_ivector.yaml": (
        [
            "--set",
            "data.background.max_speakers=6",
            "--set",
            "data.targets.max_speakers=4",
            "--set",
            "ivector.rank=20",
            "--set",
            "ivector.n_iter=2",
        ],
        lambda r: r["n_trials"] == 4 * 320 and r["n_target"] == 320 and r["eer"] < 0.45,
    ),
}


#: Fusion configs: run after the experiments they fuse (test_fusion_recipe_runs_small).
FUSION = "speaker_verification/arabic_speech_commands/config_fusion.yaml"


def test_every_recipe_variant_is_covered_and_documented() -> None:
    found = {str(p.relative_to(RECIPES)) for p in RECIPES.rglob("config_*.yaml")}
    assert found == set(VARIANTS) | set(MINIATURE_VARIANTS) | {FUSION}
    assert not set(VARIANTS) & set(MINIATURE_VARIANTS)
    for rel in found:
        readme = (RECIPES / rel).parent / "README.md"
        assert f"gmmspeech run recipes/{rel}" in readme.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("rel", sorted(VARIANTS))
def test_recipe_variant_runs_small(rel: str, shared_data: Path, tmp_path: Path, capsys) -> None:
    extra, check = VARIANTS[rel]
    out = tmp_path / "exp"
    args = ["run", str(RECIPES / rel), "--out", str(out), "--no-progress", *SMALL, *extra]
    assert main(args) == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert check(res), res


@pytest.mark.slow
@pytest.mark.shared_data
def test_fusion_recipe_runs_small(shared_data: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The GMM-UBM and i-vector experiments at small settings, then the fusion config
    naming them through GMM_EXP and IVECTOR_EXP."""
    folder = "speaker_verification/arabic_speech_commands"
    gmm_extra, _ = CASES[folder]
    iv_extra, _ = VARIANTS[f"{folder}/config_ivector.yaml"]
    for cfg, out, extra in (
        ("config.yaml", "gmm", gmm_extra),
        ("config_ivector.yaml", "iv", iv_extra),
    ):
        args = ["run", str(RECIPES / folder / cfg), "--out", str(tmp_path / out), "--no-progress"]
        assert main([*args, *SMALL, *extra]) == 0, capsys.readouterr().err
    monkeypatch.setenv("GMM_EXP", str(tmp_path / "gmm"))
    monkeypatch.setenv("IVECTOR_EXP", str(tmp_path / "iv"))
    args = ["run", str(RECIPES / FUSION), "--out", str(tmp_path / "fused"), "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "fused/results.json").read_text())
    assert set(res["systems"]) == {"gmm-ubm", "ivector"} and res["n_trials"] == 4 * 320
    assert res["fusion"]["chosen"] in {"gmm-ubm", "ivector", "gmm-ubm+ivector"}


def test_every_recipe_is_covered_and_documented() -> None:
    """Each recipe runs here on ../shared/data, or (corpora the developers do not have) on
    a generated miniature in test_corpus_recipes.py; never neither."""
    found = {str(p.parent.relative_to(RECIPES)) for p in RECIPES.rglob("config.yaml")}
    assert found == set(CASES) | set(MINIATURES)
    assert not set(CASES) & set(MINIATURES)
    for rel in found:
        readme = (RECIPES / rel / "README.md").read_text(encoding="utf-8")
        assert f"gmmspeech run recipes/{rel}/config.yaml" in readme


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("rel", sorted(CASES))
def test_recipe_runs_small(rel: str, shared_data: Path, tmp_path: Path, capsys) -> None:
    extra, check = CASES[rel]
    out = tmp_path / "exp"
    cfg = RECIPES / rel / "config.yaml"
    args = ["run", str(cfg), "--out", str(out), "--no-progress", *SMALL, *extra]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "0 failed" in printed
    res = json.loads((out / "results.json").read_text())
    assert check(res), res
    assert (out / "report.md").is_file()
