"""The YAML config layer: safe loading, file:line errors, suggestions, typed overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from gmmspeech.config import (
    ComputeConfig,
    DataConfig,
    EnrollConfig,
    ExperimentConfig,
    ExtractConfig,
    FeatureConfig,
    ScoringConfig,
    UBMConfig,
    config_hash,
    to_dict,
)
from gmmspeech.configio import dump_yaml, load_config
from gmmspeech.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

BASE = """\
name: t
task: verification
data:
  root: corpus
  background:
    path: bg
    pattern: "{spk}-{n}.wav"
  targets:
    path: tg
    pattern: "{spk}/{spk}-{n}.wav"
ubm:
  n_components: 64
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle`` (computed from the text)."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_loads_with_defaults_and_values(tmp_path: Path) -> None:
    p = write(tmp_path, BASE)
    cfg = load_config(p)
    assert cfg.ubm.n_components == 64
    # everything not in the file is the dataclass default
    assert cfg.ubm.iterations_per_stage == UBMConfig().iterations_per_stage
    assert cfg.features == FeatureConfig()
    assert cfg.scoring == ScoringConfig()
    assert cfg.data.background is not None and cfg.data.background.pattern == "{spk}-{n}.wav"
    # relative data.root is relative to the config file's folder
    assert cfg.data.root == str((tmp_path / "corpus").resolve())


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    text = BASE.replace("  n_components: 64", "  n_componets: 64")
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert f"{p}:{line_of(text, 'n_componets')}:" in msg
    assert "'ubm.n_componets'" in msg and "did you mean 'ubm.n_components'" in msg


def test_unknown_nested_and_section_keys(tmp_path: Path) -> None:
    text = BASE.replace('    pattern: "{spk}-{n}.wav"', '    patern: "{spk}-{n}.wav"')
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"data\.background\.patern.*did you mean"):
        load_config(p)
    text = BASE + "scorng:\n  top_c: 3\n"
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert f":{line_of(text, 'scorng')}:" in str(err.value)
    assert "did you mean 'scoring'" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "key", "expect"),
    [
        ("  n_components: 64", "  n_components: lots", "ubm.n_components", "expected an integer"),
        ("  n_components: 64", "  n_components: 6.5", "ubm.n_components", "expected an integer"),
        ("  n_components: 64", "  n_components: true", "ubm.n_components", "expected an integer"),
        ("  n_components: 64", "  n_components: 0", "ubm.n_components", "must be >= 1"),
        ("  n_components: 64", "  iterations_per_stage: 3", "iterations_per_stage", "a list"),
        ("task: verification", "task: verify", "task", "must be one of"),
    ],
)
def test_wrong_types_and_values(tmp_path: Path, old: str, new: str, key: str, expect: str) -> None:
    text = BASE.replace(old, new)
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert f"{p}:{line_of(text, new.strip())}:" in msg
    assert key in msg and expect in msg


def test_float_field_accepts_int_and_hash_is_stable(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, BASE + "enroll:\n  relevance_factor: 16\n"))
    b = load_config(write(tmp_path, BASE + "enroll:\n  relevance_factor: 16.0\n"))
    assert a.enroll.relevance_factor == 16.0 and isinstance(a.enroll.relevance_factor, float)
    assert config_hash(to_dict(a)) == config_hash(to_dict(b))


def test_duplicate_keys_rejected(tmp_path: Path) -> None:
    text = BASE + "ubm:\n  n_components: 32\n"
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"duplicate key 'ubm'.*first at line"):
        load_config(p)


def test_no_tags_or_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = BASE + f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    assert not marker.exists()


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    text = BASE + "scoring: {top_c: 5\n"
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"{p}:\d+: not valid YAML"):
        load_config(p)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("/nonexistent/x.yaml")


def test_overrides_are_typed(tmp_path: Path) -> None:
    p = write(tmp_path, BASE)
    cfg = load_config(
        p,
        [
            "ubm.n_components=256",
            "ubm.iterations_per_stage=[1, 2]",
            "scoring.norm=s",
            "scoring.cohort_size=null",
            "name=2024",
            "features.fmax=7000",
        ],
    )
    assert cfg.ubm.n_components == 256
    assert cfg.ubm.iterations_per_stage == (1, 2)
    assert cfg.scoring.norm == "s"
    assert cfg.name == "2024"  # a string field keeps the text as typed
    assert cfg.features.fmax == 7000.0


@pytest.mark.parametrize(
    ("item", "expect"),
    [
        ("ubm.n_components=abc", "expected an integer"),
        ("ubm.n_componets=3", "did you mean 'ubm.n_components'"),
        ("ubm.n_components", "expected KEY=VALUE"),
        ("ubm..x=1", "expected KEY=VALUE"),
        ("ubm.n_components.x=1", "not a section"),
        ("compute.backend=dusk", "must be one of"),
    ],
)
def test_bad_overrides_name_the_item(tmp_path: Path, item: str, expect: str) -> None:
    p = write(tmp_path, BASE)
    with pytest.raises(ConfigError) as err:
        load_config(p, [item])
    assert expect in str(err.value)
    assert str(err.value).startswith(f"--set {item}")


def test_override_paths_are_relative_to_cwd(tmp_path: Path, monkeypatch) -> None:
    p = write(tmp_path, BASE)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(p, ["data.root=mydata"])
    assert cfg.data.root == str((elsewhere / "mydata").resolve())


def test_task_requirements(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.background: required"):
        load_config(write(tmp_path, "task: verification\n"))
    with pytest.raises(ConfigError, match=r"data\.dataset: required"):
        load_config(write(tmp_path, "task: classification\n"))


def test_dump_roundtrip(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE), ["scoring.top_c=3"])
    text = dump_yaml(cfg)
    assert f"config_hash: {config_hash(to_dict(cfg))}" in text.splitlines()[0]
    again = load_config(write(tmp_path, text))
    assert again == cfg
    assert yaml.safe_load(text) == to_dict(cfg)


# ------------------------------------------------------------------ documented defaults
SECTIONS = {
    "ubm": UBMConfig,
    "features": FeatureConfig,
    "extract": ExtractConfig,
    "enroll": EnrollConfig,
    "scoring": ScoringConfig,
    "compute": ComputeConfig,
}


@pytest.mark.parametrize("name", ["speaker_verification.yaml", "classification.yaml"])
def test_configs_folder_documents_the_defaults(name: str) -> None:
    """configs/*.yaml list every option; the stage sections hold exactly the defaults."""
    path = REPO / "configs" / name
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg = load_config(path)
    for section, cls in SECTIONS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(raw[section]) == fields, f"{name}: {section} must list every option"
        if not (name == "classification.yaml" and section == "enroll"):
            assert getattr(cfg, section) == cls(), f"{name}: {section} differs from defaults"
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    assert set(raw["data"]) <= data_fields
    assert set(raw) == {f.name for f in dataclasses.fields(ExperimentConfig)}
