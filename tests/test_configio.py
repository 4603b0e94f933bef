"""The YAML config layer: safe loading, file:line errors, suggestions, typed overrides."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from gmmspeech.config.classification import (
    FEATURE_PRESETS,
    TASK_PRESETS,
    ClassificationConfig,
)
from gmmspeech.config.loader import (
    MAX_YAML_NODES,
    ConfigSource,
    did_you_mean,
    dump_yaml,
    load_config,
)
from gmmspeech.config.sections import (
    TASK_DEFAULTS,
    BackendConfig,
    ComputeConfig,
    DataConfig,
    EnrollConfig,
    ExperimentConfig,
    ExtractConfig,
    FeatureConfig,
    FusionConfig,
    IVectorConfig,
    ScoringConfig,
    UBMConfig,
    config_hash,
    to_dict,
)
from gmmspeech.errors import MAX_REPR, ConfigError, short_repr
from gmmspeech.mixture.gmm import DiagGMM

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
    "ivector": IVectorConfig,
    "backend": BackendConfig,
    "fusion": FusionConfig,
    "classification": ClassificationConfig,
}


DATA_FOR = {
    "verification": ["data.background.pattern={spk}.wav", "data.targets.pattern={spk}.wav"],
    "classification": ["data.dataset.pattern={label}.wav"],
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
        task = raw["task"]
        defaults = dict(TASK_DEFAULTS.get(task, {}).get(section, {}))
        if section == "features":  # the task's feature preset
            defaults.update(FEATURE_PRESETS[TASK_PRESETS[task]])
        want = cls(**defaults)  # type: ignore[arg-type]
        assert getattr(cfg, section) == want, f"{name}: {section} differs from defaults"
        # and a config that leaves the section out gets the same
        bare = load_config(None, [f"task={task}", *DATA_FOR[task]])
        assert getattr(bare, section) == want
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    assert set(raw["data"]) <= data_fields
    assert set(raw) == {f.name for f in dataclasses.fields(ExperimentConfig)}


# ------------------------------------------------------------------ bounded YAML (hostile)
def _laughs(levels: int, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    # 9 ** 9 = 387 million "lol"s once expanded, from a file of under 1 KB
    text = "name: t\n" + _laughs(9).replace("a9: &a9", "scoring: &a9")
    p = write(tmp_path, text)
    assert p.stat().st_size < 1024
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert time.perf_counter() - t0 < 2.0
    msg = str(err.value)
    assert "aliases expand to more than" in msg and str(MAX_YAML_NODES) in msg
    assert msg.startswith(f"{p}:")
    assert len(msg) < 300


def test_aliases_below_the_cap_still_work(tmp_path: Path) -> None:
    text = """\
name: t
data:
  background: &set
    path: bg
    pattern: "{spk}-{n}.wav"
  targets: *set
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.data.targets == cfg.data.background
    assert cfg.data.targets is not None and cfg.data.targets.pattern == "{spk}-{n}.wav"


def test_recursive_alias_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nscoring: &s\n  x: *s\n")
    with pytest.raises(ConfigError, match="recursive"):
        load_config(p)


def test_error_messages_do_not_repr_huge_values(tmp_path: Path) -> None:
    big = "[" + ", ".join(str(i) for i in range(20000)) + "]"
    p = write(tmp_path, BASE + f"scoring:\n  method: {big}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "scoring.method" in msg and "expected a string" in msg
    assert len(msg) < 400 and "19999" not in msg
    p = write(tmp_path, BASE.replace("name: t", "name: " + "x" * 100_000 + "/y"))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "without slashes" in str(err.value) and len(str(err.value)) < 400


def test_short_repr_is_bounded_and_exact_when_short() -> None:
    for value in ([1, 2], (3,), {"a": [1.5, None]}, "ab'c", 7):
        assert short_repr(value) == repr(value)
    nested: list[object] = ["x"]
    for _ in range(30):  # 2**30 leaves if expanded
        nested = [nested, nested]
    t0 = time.perf_counter()
    text = short_repr(nested)
    assert time.perf_counter() - t0 < 0.5
    assert len(text) == MAX_REPR and text.endswith("...")


def test_numeric_labels_get_a_hint_to_quote_them(tmp_path: Path) -> None:
    text = BASE.replace("ubm:\n", "  enroll_labels: [01, 02]\nubm:\n")
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert f"{p}:{line_of(text, 'enroll_labels')}:" in msg
    assert "data.enroll_labels[0]: expected a string, got 1 (int)" in msg
    assert "quote it" in msg
    quoted = load_config(write(tmp_path, text.replace("[01, 02]", "['01', '02']")))
    assert quoted.data.enroll_labels == ("01", "02")


# ------------------------------------------------------------------ ${env:NAME}
def test_env_variables_in_strings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMMS_CORPUS", str(tmp_path / "corpus"))
    monkeypatch.setenv("GMMS_K", "32")
    monkeypatch.delenv("GMMS_UNSET", raising=False)
    text = (
        BASE.replace("root: corpus", "root: ${env:GMMS_CORPUS}")
        .replace("path: bg", "path: ${env:GMMS_UNSET,bg}-dir")
        .replace("n_components: 64", "n_components: ${env:GMMS_K}")
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.data.root == str((tmp_path / "corpus").resolve())
    assert cfg.data.background is not None and cfg.data.background.path == "bg-dir"
    assert cfg.ubm.n_components == 32
    monkeypatch.setenv("GMMS_K", "2024")
    named = load_config(write(tmp_path, text.replace("name: t", "name: ${env:GMMS_K}")))
    assert named.name == "2024"  # a string option keeps the text


def test_unset_env_variable_names_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GMMS_UNSET", raising=False)
    text = BASE.replace("path: tg", "path: ${env:GMMS_UNSET}/tg")
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:{line_of(text, 'GMMS_UNSET')}:")
    assert "GMMS_UNSET is not set" in msg and "data.targets.path" in msg


# ------------------------------------------------------------------ rules stated once
def test_enroll_rules_are_the_map_rules(tmp_path: Path) -> None:
    from gmmspeech.mixture.map import map_adapt

    text = BASE + "enroll:\n  adapt: mm\n"
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert f"{p}:{line_of(text, 'adapt: mm')}: enroll.adapt" in str(err.value)
    ubm = DiagGMM(np.full(2, 0.5), np.array([[0.0], [3.0]]), np.ones((2, 1)))
    x = np.zeros((5, 1))
    for bad in ("mm", "x", ""):
        with pytest.raises(ConfigError) as a:
            EnrollConfig(adapt=bad)
        with pytest.raises(ConfigError) as b:
            map_adapt(ubm, x, adapt=bad)
        assert str(a.value) == str(b.value)
    for bad_r in (-1.0, float("nan"), "16"):
        with pytest.raises(ConfigError) as a:
            EnrollConfig(relevance_factor=bad_r)  # type: ignore[arg-type]
        with pytest.raises(ConfigError) as b:
            map_adapt(ubm, x, relevance_factor=bad_r)  # type: ignore[arg-type]
        assert str(a.value) == str(b.value)
    # r = 0 (maximum likelihood) and r = inf (the UBM) are valid on both sides
    assert EnrollConfig(relevance_factor=0).relevance_factor == 0.0
    assert EnrollConfig(relevance_factor=float("inf"), adapt="wm").adapt == "mw"
    assert np.allclose(map_adapt(ubm, x, relevance_factor=float("inf")).means, ubm.means)


def test_one_did_you_mean_helper() -> None:
    """difflib is used in one place: config.build.did_you_mean."""
    users = sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "gmmspeech").rglob("*.py")
        if "difflib" in p.read_text(encoding="utf-8")
    )
    assert users == ["gmmspeech/config/build.py"]
    assert did_you_mean("procesess", ["local", "processes"]) == "did you mean 'processes'?"
    assert did_you_mean("zzz", ["local"], otherwise="none") == "none"


def test_public_load_config() -> None:
    import gmmspeech

    assert gmmspeech.load_config is load_config
    assert "load_config" in gmmspeech.__all__


def test_config_source_sections_flags_and_bare(tmp_path: Path) -> None:
    p = write(tmp_path, "n_mfcc: 13\n")
    src = ConfigSource(p, ["deltas=1"], bare="features")
    feats = src.section("features", FeatureConfig)
    assert (feats.n_mfcc, feats.deltas) == (13, 1)
    p = write(tmp_path, BASE + "enroll:\n  adapt: mw\n  relevance_factor: 8\n")
    src = ConfigSource(p, ["enroll.relevance_factor=4"], {"enroll.adapt": ("--adapt", "v")})
    assert src.section("enroll", EnrollConfig) == EnrollConfig(relevance_factor=4.0, adapt="v")
    with pytest.raises(ConfigError, match=r"^--adapt mm: enroll\.adapt"):
        ConfigSource(p, [], {"enroll.adapt": ("--adapt", "mm")}).section("enroll", EnrollConfig)
    with pytest.raises(ConfigError, match="did you mean 'scoring'"):
        ConfigSource(p, ["scorin.top_c=3"])


def test_python_built_configs_have_one_type_per_field() -> None:
    """25 and 25.0, [1, 2] and (1, 2) make equal configs with one hash, from Python too."""
    a = UBMConfig(tolerance=0, n_components=64.0, iterations_per_stage=[1, 2])  # type: ignore[arg-type]
    b = UBMConfig(tolerance=0.0, n_components=64, iterations_per_stage=(1, 2))
    assert a == b and config_hash(a) == config_hash(b)
    assert type(a.tolerance) is float and type(a.n_components) is int
    assert type(a.iterations_per_stage) is tuple
    s = ScoringConfig(c_fa=2, cohort_size=None)
    assert type(s.c_fa) is float and s.cohort_size is None
    assert type(ExtractConfig(max_failed_fraction=0).max_failed_fraction) is float
    with pytest.raises(ConfigError, match="n_components: must be >= 1"):
        UBMConfig(n_components=0.0)  # type: ignore[arg-type]


def test_classification_defaults_to_mw_unless_set(tmp_path) -> None:
    base = ["task=classification", "data.dataset.pattern={label}.wav"]
    assert load_config(None, base).enroll.adapt == "mw"
    assert load_config(None, [*base, "enroll.adapt=m"]).enroll.adapt == "m"  # a choice stands
    assert load_config(None, [*base, "enroll.relevance_factor=8"]).enroll.adapt == "mw"
    verification = ["data.background.pattern={spk}.wav", "data.targets.pattern={spk}.wav"]
    assert load_config(None, verification).enroll.adapt == "m"
