"""FeatureStore and extract_to_store: contents, failures, resume, crash leftovers, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers_audio import make_datadir, write_wav

import gmmspeech
from gmmspeech.config.sections import ComputeConfig, FeatureConfig, config_hash, to_dict
from gmmspeech.corpus.datadir import DataDir
from gmmspeech.engine import blas_threads, make_engine
from gmmspeech.errors import ConfigError, DataError
from gmmspeech.features.audio import load_audio
from gmmspeech.features.extraction import extract_to_store
from gmmspeech.features.frontend import extract_features
from gmmspeech.features.store import FeatureStore, SortedStore, StoreWriter, merge_stores


def _add_utt(data: Path, utt: str, path: Path, spk: str = "spkx") -> None:
    """Append an utterance to a data dir written by make_datadir (keeps files sorted)."""
    dd = DataDir.read(data, check_audio=False)
    wav, u2s = dict(dd.wav_scp), dict(dd.utt2spk)
    wav[utt], u2s[utt] = str(path), spk
    DataDir(wav, u2s).write(data)


def test_store_holds_what_extract_features_computes(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=6)
    out = tmp_path / "feats.h5"
    cfg = FeatureConfig(n_mfcc=13, deltas=1)
    report = extract_to_store(data, out, cfg)
    assert (report.n_extracted, report.n_failed, report.n_existing) == (6, 0, 0)
    dd = DataDir.read(data)
    with FeatureStore(out) as store:
        assert len(store) == 6 and list(store) == dd.utt_ids
        assert store.config == cfg and store.n_features == 26
        assert store.config_hash == config_hash(cfg)
        total = 0
        for utt in dd.utt_ids:
            y, rate = load_audio(dd.audio_path(utt))
            # Extraction runs with one BLAS thread; a multi-threaded matrix product rounds
            # float32 sums in another order, so the reference runs under the same limit.
            with blas_threads(1):
                expected = extract_features(y, rate, cfg)
            got = store[utt]
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected)
            assert store.num_frames(utt) == expected.shape[0]
            info = store.info(utt)
            assert info["duration"] == pytest.approx(y.size / rate)
            assert info["source"] == str(dd.audio_path(utt))
            total += expected.shape[0]
        assert store.n_frames == total
        assert "nope" not in store
        with pytest.raises(KeyError):
            store["nope"]
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "gmmspeech.FeatureStore"
        assert f.attrs["config_hash"] == config_hash(cfg)
    log_text = report.log.read_text()
    assert "extracted 6; failed 0" in log_text
    assert gmmspeech.FeatureStore is FeatureStore and gmmspeech.extract_to_store is extract_to_store


def test_chunks_stream_all_frames_in_order(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=5)
    out = tmp_path / "f.h5"
    extract_to_store(data, out)
    with FeatureStore(out) as store:
        full = np.concatenate([store[u] for u in store])
        blocks = [b.copy() for b in store.chunks(37)]
        assert all(b.shape[0] == 37 for b in blocks[:-1]) and 0 < blocks[-1].shape[0] <= 37
        np.testing.assert_array_equal(np.concatenate(blocks), full)
        sub = store.select([list(store)[3], list(store)[1]])
        assert list(sub) == sorted([list(store)[3], list(store)[1]])
        np.testing.assert_array_equal(
            np.concatenate(list(sub.chunks(10_000))), np.concatenate([store[u] for u in sub])
        )
        sub.close()
        assert len(store[list(store)[0]]) > 0  # the parent is still open


def test_failures_are_counted_logged_and_skipped(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=8)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "text.wav").write_text("not audio\n" * 30)
    write_wav(bad / "silent.wav", np.zeros(16000, np.float32))
    write_wav(bad / "short.wav", np.full(200, 0.1, np.float32))
    for name in ("empty", "text", "silent", "short"):
        _add_utt(data, f"zz-{name}", bad / f"{name}.wav")
    out = tmp_path / "f.h5"
    # 4 of 12 failed: more than the default 5% -> refused, nothing written, work kept
    with pytest.raises(DataError, match="4 of 12 utterances failed") as info:
        extract_to_store(data, out)
    assert "f.h5.log" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".f.h5.*"))  # no temporary left
    assert (tmp_path / "f.h5.parts").is_dir()
    with pytest.raises(DataError, match="interrupted"):
        FeatureStore(out)
    log_text = (tmp_path / "f.h5.log").read_text()
    for name, cause in [
        ("empty", "0 bytes"),
        ("text", "not an audio file"),
        ("silent", "VAD kept no frame"),
        ("short", "shorter than one frame"),
    ]:
        line = next(x for x in log_text.splitlines() if x.startswith(f"zz-{name}\t"))
        assert cause in line, line
    # allowed failures: the 8 good ones are kept from the first run, the 4 bad retried
    report = extract_to_store(data, out, max_failed_fraction=0.5)
    assert (report.n_existing, report.n_extracted, report.n_failed) == (8, 0, 4)
    with FeatureStore(out) as store:
        assert len(store) == 8 and not any(u.startswith("zz-") for u in store)
    assert not (tmp_path / "f.h5.parts").exists()
    # a fresh run with the failures allowed writes the same store as it goes
    fresh = tmp_path / "fresh.h5"
    report = extract_to_store(data, fresh, max_failed_fraction=0.5)
    assert (report.n_extracted, report.n_failed) == (8, 4)
    assert fresh.read_bytes() == out.read_bytes()


def test_nothing_succeeding_fails(tmp_path: Path) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    DataDir({"u": str(tmp_path / "e.wav")}).write(tmp_path / "d")
    with pytest.raises(DataError, match="1 of 1 utterances failed"):
        extract_to_store(tmp_path / "d", tmp_path / "f.h5", max_failed_fraction=1.0)
    assert not (tmp_path / "f.h5").exists()


def test_other_config_is_refused_with_the_differences(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=3)
    out = tmp_path / "f.h5"
    extract_to_store(data, out)
    before = out.read_bytes()
    with pytest.raises(ConfigError) as info:
        extract_to_store(data, out, FeatureConfig(n_mfcc=13, vad="gmm"))
    msg = str(info.value)
    assert "n_mfcc: 20 in the store vs 13 requested" in msg
    assert "vad: 'energy' in the store vs 'gmm' requested" in msg
    assert out.read_bytes() == before


def test_resume_adds_only_new_utterances(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=6)
    out = tmp_path / "f.h5"
    dd = DataDir.read(data)
    first = dd.subset(dd.utt_ids[:4])
    assert extract_to_store(first, out).n_extracted == 4
    again = extract_to_store(dd, out)
    assert (again.n_existing, again.n_extracted) == (4, 2)
    ref = tmp_path / "ref.h5"
    extract_to_store(dd, ref)
    assert out.read_bytes() == ref.read_bytes()  # same bytes as one uninterrupted run
    assert extract_to_store(dd, out).n_extracted == 0


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path: Path) -> None:
    """State after kill -9 at the worst moments: a half-written part and a half-merged store."""
    data = make_datadir(tmp_path, n_utts=7)
    ref = tmp_path / "ref.h5"
    extract_to_store(data, ref, batch_size=3)
    out = tmp_path / "f.h5"
    # run once, with parts of 3, and keep only the finished parts (as if killed before merge)
    dd = DataDir.read(data)
    extract_to_store(dd.subset(dd.utt_ids[:6]), tmp_path / "tmp.h5", batch_size=3)
    parts = tmp_path / "f.h5.parts"
    parts.mkdir()
    with FeatureStore(tmp_path / "tmp.h5") as done:
        ids = list(done)
        for k, chunk in enumerate([ids[:3], ids[3:6]]):
            with h5py.File(parts / f"part-{k:06d}.h5", "w") as f:
                writer = StoreWriter(f, to_dict(done.config), done.n_features)
                for u in chunk:
                    i = done.info(u)
                    row = (i["n_frames_total"], i["duration"], i["source"], i["source_fp"])
                    writer.add(u, done[u], *row)
                writer.finish()
    (parts / ".part-000002.h5.tmp").write_bytes(b"\x89HDF\r\n half written")
    (tmp_path / ".f.h5.abc123.tmp").write_bytes(b"half merged")
    with pytest.raises(DataError, match="interrupted"):
        FeatureStore(out)
    report = extract_to_store(data, out, batch_size=3)
    assert (report.n_existing, report.n_extracted) == (6, 1)
    assert out.read_bytes() == ref.read_bytes()
    assert not parts.exists() and not (tmp_path / ".f.h5.abc123.tmp").exists()


def test_parts_already_merged_are_dropped(tmp_path: Path) -> None:
    """Killed after the rename of the merged store but before the parts were deleted."""
    data = make_datadir(tmp_path, n_utts=4)
    out = tmp_path / "f.h5"
    extract_to_store(data, out, batch_size=2)
    parts = tmp_path / "f.h5.parts"
    parts.mkdir()
    with h5py.File(out, "r") as src, h5py.File(parts / "part-000000.h5", "w") as f:
        for key, value in src.attrs.items():
            f.attrs[key] = value
        src.copy(src["utts"], f, "utts")
        src.copy(src["index"], f, "index")
    before = out.read_bytes()
    report = extract_to_store(data, out)
    assert report.n_extracted == 0 and not parts.exists()
    assert out.read_bytes() == before


def test_two_jobs_give_the_same_store(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=10)
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    extract_to_store(data, one)
    with make_engine(ComputeConfig(backend="processes", n_workers=2)) as engine:
        r = extract_to_store(data, two, engine=engine, batch_size=3)
    assert r.n_extracted == 10
    assert one.read_bytes() == two.read_bytes()


def test_8k_audio_into_16k_config_is_resampled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = make_datadir(tmp_path, n_utts=2, sr=8000)
    out = tmp_path / "f.h5"
    with caplog.at_level("WARNING", logger="gmmspeech.features.extraction"):
        report = extract_to_store(data, out)
    assert report.resampled == {8000: 2}
    assert any("resampled from 8000 Hz" in r.getMessage() for r in caplog.records)
    dd = DataDir.read(data)
    with FeatureStore(out) as store:
        u = dd.utt_ids[0]
        y, rate = load_audio(dd.audio_path(u), sample_rate=16000)
        np.testing.assert_allclose(store[u], extract_features(y, rate), atol=1e-5)


def test_unusable_output_paths(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=1)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        extract_to_store(data, tmp_path / "afile" / "f.h5")
    with pytest.raises(DataError, match="does not exist"):
        extract_to_store(data, tmp_path / "no" / "f.h5")
    with pytest.raises(DataError, match="is a folder"):
        extract_to_store(data, tmp_path)
    if Path("/proc").is_dir():  # a folder nobody may write, even root
        with pytest.raises(DataError, match="output"):
            extract_to_store(data, "/proc/f.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="will not be overwritten"):
        extract_to_store(data, tmp_path / "junk.h5")
    assert (tmp_path / "junk.h5").read_text() == "not hdf5"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores modes")
def test_read_only_output_folder(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=1)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(DataError, match="not writable"):
            extract_to_store(data, ro / "f.h5")
    finally:
        ro.chmod(0o700)


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    data = make_datadir(tmp_path, n_utts=1)
    out = tmp_path / "f.h5"
    fd = os.open(tmp_path / "f.h5.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(DataError, match="another `gmmspeech extract`"):
            extract_to_store(data, out)
    finally:
        os.close(fd)
    assert extract_to_store(data, out).n_extracted == 1


def test_lock_taken_on_a_file_removed_meanwhile_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous holder removes the lock file between our open and our lock."""
    import gmmspeech.features.extraction as ex

    path = tmp_path / "f.h5.lock"
    calls = []
    real = ex._try_lock

    def racing(fd: int) -> bool:
        calls.append(fd)
        if len(calls) == 1:  # the file we opened is replaced before we hold it
            path.unlink()
            path.write_bytes(b"")
        return real(fd)

    monkeypatch.setattr(ex, "_try_lock", racing)
    with ex._Lock(path) as lock:
        assert len(calls) == 2
        assert lock._fd is not None and os.path.samestat(os.fstat(lock._fd), os.stat(path))
    assert not path.exists()


def test_bad_arguments(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=1)
    with pytest.raises(ConfigError, match="window: 'hamming2' is not a window"):
        extract_to_store(data, tmp_path / "f.h5", FeatureConfig(window="hamming2"))
    with pytest.raises(ConfigError, match="max_failed_fraction"):
        extract_to_store(data, tmp_path / "f.h5", max_failed_fraction=2.0)
    with pytest.raises(ConfigError, match="config"):
        extract_to_store(data, tmp_path / "f.h5", to_dict(FeatureConfig()))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="not a data directory"):
        extract_to_store(tmp_path / "nodir", tmp_path / "f.h5")


def _write_v1_store(path: Path, store: FeatureStore, ids: list[str]) -> None:
    """A store as gmmspeech wrote it before format 2: facts as attributes, no index."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "gmmspeech.FeatureStore"
        f.attrs["format_version"] = 1
        f.attrs["gmmspeech_version"] = "0.1.0"
        f.attrs["config"] = json.dumps(to_dict(store.config), sort_keys=True)
        f.attrs["config_hash"] = store.config_hash
        f.attrs["n_features"] = store.n_features
        g = f.create_group("utts")
        for u in ids:
            info = store.info(u)
            ds = g.create_dataset(u, data=store[u])
            ds.attrs["n_frames_total"] = info["n_frames_total"]
            ds.attrs["duration"] = info["duration"]
            ds.attrs["source"] = info["source"]


@pytest.mark.parametrize("version", [1, 2])
def test_stores_of_the_earlier_front_end_are_refused_with_the_fix(
    tmp_path: Path, version: int
) -> None:
    data = make_datadir(tmp_path, n_utts=3)
    ref = tmp_path / "ref.h5"
    extract_to_store(data, ref)
    old = tmp_path / "old.h5"
    with FeatureStore(ref) as store:
        _write_v1_store(old, store, list(store)[:2])
    with h5py.File(old, "a") as f:
        f.attrs["format_version"] = version
    before = old.read_bytes()
    with pytest.raises(
        DataError, match=rf"old\.h5: a feature store of format_version {version}.*re-extract"
    ):
        FeatureStore(old)
    with pytest.raises(DataError, match="re-extract it with `gmmspeech extract`"):
        extract_to_store(data, old)
    assert old.read_bytes() == before


def test_index_rows_match_the_datasets(tmp_path: Path) -> None:
    data = make_datadir(tmp_path, n_utts=4)
    out = tmp_path / "f.h5"
    extract_to_store(data, out)
    with h5py.File(out, "r") as f:
        index = f["index"]
        ids = list(index["utt_id"].asstr()[()])
        assert ids == sorted(f["utts"].keys())
        assert [f["utts"][u].shape[0] for u in ids] == list(index["n_frames"][()])
        assert all(len(f["utts"][u].attrs) == 0 for u in ids)
    with h5py.File(out, "a") as f:  # damage it: one row fewer than datasets
        rows = f["index"]["n_frames"][()]
        del f["index"]["n_frames"]
        f["index"].create_dataset("n_frames", data=rows[:-1])
    with pytest.raises(DataError, match=r"f\.h5: the columns of the 'index' table differ"):
        FeatureStore(out)


def test_store_written_during_extraction_is_sorted_whatever_the_arrival_order(
    tmp_path: Path,
) -> None:
    """Results reach the parent out of order; the store must not depend on that order."""

    rng = np.random.default_rng(0)
    ids = [f"utt{i:03d}" for i in range(40)]
    feats = {u: rng.standard_normal((int(rng.integers(5, 50)), 6)).astype(np.float32) for u in ids}
    failed = {"utt007", "utt020", "utt039"}
    cfg = to_dict(FeatureConfig(n_mfcc=6, deltas=0))
    out = tmp_path / "s.h5"
    final = SortedStore(out, ids, cfg, 6)
    arrival = list(rng.permutation(ids))
    for k, u in enumerate(arrival):
        final.add(u, None if u in failed else (feats[u], len(feats[u]) + 3, 0.5, f"/a/{u}.wav"))
        assert final.pos == next((i for i, v in enumerate(ids) if v not in arrival[: k + 1]), 40)
    os.replace(final.finish(), out)
    # reference: the same utterances in part files of 7, merged
    part = tmp_path / "part.h5"
    with h5py.File(part, "w") as f:
        writer = StoreWriter(f, cfg, 6)
        for u in reversed(ids):
            if u not in failed:
                writer.add(u, feats[u], len(feats[u]) + 3, 0.5, f"/a/{u}.wav")
        writer.finish()
    ref = tmp_path / "ref.h5"
    assert merge_stores(ref, [part], cfg, 6) == 37
    assert out.read_bytes() == ref.read_bytes()
    with FeatureStore(out) as store:
        assert list(store) == [u for u in ids if u not in failed]
        np.testing.assert_array_equal(store["utt011"], feats["utt011"])
        assert store.info("utt011")["n_frames_total"] == len(feats["utt011"]) + 3
