from pathlib import Path

import pytest
from helpers_audio import make_datadir

from gmmspeech import ProcessEngine
from gmmspeech.config.sections import FeatureConfig
from gmmspeech.features.extraction import extract_to_store


def test_extraction_on_engines_gives_the_identical_store(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=10)
    cfg = FeatureConfig(n_mfcc=13)
    extract_to_store(data, tmp_path / "local.h5", cfg)
    with ProcessEngine(n_workers=2) as engine:
        report = extract_to_store(data, tmp_path / "pool.h5", cfg, engine=engine)
    assert report.n_extracted == 10 and report.n_failed == 0
    assert (tmp_path / "pool.h5").read_bytes() == (tmp_path / "local.h5").read_bytes()
    pytest.importorskip("dask.distributed")
    from gmmspeech import DaskEngine

    with DaskEngine(n_workers=2) as engine:
        extract_to_store(data, tmp_path / "dask.h5", cfg, engine=engine)
    assert (tmp_path / "dask.h5").read_bytes() == (tmp_path / "local.h5").read_bytes()
