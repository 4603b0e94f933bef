from pathlib import Path

import h5py
from helpers_audio import make_datadir

import gmmspeech.features.extraction as fs
from gmmspeech.config.sections import FeatureConfig
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.features.store import OpenFiles


def test_merge_of_many_parts_keeps_few_files_open(tmp_path: Path, monkeypatch) -> None:
    data = make_datadir(tmp_path, n_utts=12)
    cfg = FeatureConfig(n_mfcc=13)
    fs.extract_to_store(data, tmp_path / "one.h5", cfg)

    opened: list[int] = []
    real_init = OpenFiles.__init__

    def small_lru(self, paths, limit=8):
        real_init(self, paths, limit=2)

    real_getitem = OpenFiles.__getitem__

    def counting_getitem(self, i):
        f = real_getitem(self, i)
        opened.append(len(self.open))
        return f

    monkeypatch.setattr(OpenFiles, "__init__", small_lru)
    monkeypatch.setattr(OpenFiles, "__getitem__", counting_getitem)
    dd = DataDir.read(data)
    fs.extract_to_store(dd.subset(dd.utt_ids[:2]), tmp_path / "many.h5", cfg)
    # resumed, so merged: the old store and 10 part files of one utterance
    report = fs.extract_to_store(data, tmp_path / "many.h5", cfg, batch_size=1)
    assert report.n_extracted == 10
    assert max(opened) <= 2 and len(opened) == 11 + 12  # each index, then each utterance
    assert (tmp_path / "many.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()
    with h5py.File(tmp_path / "many.h5", "r") as f:
        assert len(f["utts"]) == 12
