import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gmmspeech import (
    ConfigError,
    DiagGMM,
    LocalEngine,
    ProcessEngine,
    make_engine,
    train_ubm,
)
from gmmspeech.config.sections import ComputeConfig
from gmmspeech.engine import map_reduce
from gmmspeech.features.framesource import ArraySource
from gmmspeech.mixture.stats import accumulate
from gmmspeech.mixture.ubm import accumulate_shard

OPTS = dict(iterations_per_stage=(2,), final_max_iterations=2, progress=False, shard_frames=3000)


def data(n=12_000, seed=0):
    rng = np.random.default_rng(seed)
    truth = DiagGMM(
        rng.dirichlet(np.ones(8)), rng.normal(size=(8, 5)) * 3, rng.uniform(0.5, 2, (8, 5))
    )
    return truth.sample(n, random_state=seed)[0].astype(np.float32)


def assert_same_model(a, b, rtol=0.0):
    for name in ("weights", "means", "variances"):
        if rtol == 0.0:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        else:
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol)


class KillOnce:
    """A shard that kills the worker process reading it, the first time only."""

    def __init__(self, x, marker):
        self.x = x
        self.marker = marker

    def chunks(self, chunk_size):
        if os.path.exists(self.marker):
            os.remove(self.marker)
            os._exit(1)
        yield from ArraySource(self.x).chunks(chunk_size)


def test_sharded_local_run_matches_single_pass_stats():
    X = data()
    gmm = DiagGMM([0.5, 0.5], [[0.0] * 5, [1.0] * 5], [[2.0] * 5, [2.0] * 5])
    shards = ArraySource(X).shards(2500)
    assert [s.n_frames for s in shards] == [2500] * 4 + [2000]
    total = map_reduce(LocalEngine(), accumulate_shard, shards, (gmm, 512))
    whole = accumulate(gmm, X)
    np.testing.assert_allclose(total.zeroth, whole.zeroth, rtol=1e-5)
    np.testing.assert_allclose(total.second, whole.second, rtol=1e-5)


def test_process_engine_gives_the_same_model():
    X = data()
    local = train_ubm(X, 8, **OPTS)
    with ProcessEngine(n_workers=2) as engine:
        pooled = train_ubm(X, 8, engine=engine, **OPTS)
    # same shards, same order of reduction; BLAS with one thread per worker may round the
    # block products differently from the parent's two threads, hence a float32 tolerance
    assert_same_model(local, pooled, rtol=1e-5)


@pytest.fixture(scope="module")
def dask_engine():
    pytest.importorskip("dask.distributed")
    from gmmspeech import DaskEngine

    engine = DaskEngine(n_workers=2, threads_per_worker=1)
    yield engine
    engine.close()


def test_dask_local_cluster_gives_the_same_model(dask_engine):
    X = data(seed=1)
    local = train_ubm(X, 8, **OPTS)
    distributed = train_ubm(X, 8, engine=dask_engine, **OPTS)
    assert_same_model(local, distributed, rtol=1e-5)
    assert len(dask_engine.client.scheduler_info()["workers"]) == 2


def test_dask_survives_a_killed_worker(dask_engine, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X = data(seed=2)
    gmm = DiagGMM([0.5, 0.5], [[0.0] * 5, [1.0] * 5], [[2.0] * 5, [2.0] * 5])
    marker = tmp_path / "kill-me"
    marker.write_text("x")
    shards = [KillOnce(X[i : i + 3000], str(marker)) for i in range(0, len(X), 3000)]
    got = map_reduce(dask_engine, accumulate_shard, shards, (gmm, 1024))
    assert not marker.exists()  # a worker really died
    expected = accumulate_shard(ArraySource(X[:3000]), (gmm, 1024))
    for s in ArraySource(X).shards(3000)[1:]:
        expected = expected + accumulate_shard(s, (gmm, 1024))
    np.testing.assert_allclose(got.zeroth, expected.zeroth, rtol=1e-6)
    np.testing.assert_allclose(got.first, expected.first, rtol=1e-6, atol=1e-6)
    # and the cluster still works afterwards
    deadline = time.time() + 30
    while len(dask_engine.client.scheduler_info()["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(dask_engine.client.scheduler_info()["workers"]) == 2


def test_misconfiguration_is_one_clear_line():
    with pytest.raises(ConfigError, match="backend"):
        make_engine(ComputeConfig(backend="dsak"))
    with pytest.raises(ConfigError, match="n_workers"):
        make_engine(ComputeConfig(backend="processes", n_workers=0))
    with pytest.raises(ConfigError, match="compute: expected a ComputeConfig"):
        make_engine("processes")  # type: ignore[arg-type]
    pytest.importorskip("dask.distributed")
    engine = make_engine(ComputeConfig(backend="dask", scheduler_address="tcp://127.0.0.1:9"))
    engine.timeout = 2.0
    t0 = time.time()
    with pytest.raises(
        ConfigError, match=r"cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'.*dask scheduler"
    ):
        engine.map(accumulate_shard, [])
    assert time.time() - t0 < 20


def test_missing_dask_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ImportError("No module named 'dask'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(ConfigError, match=r"pip install 'gmmspeech\[dask\]'"):
        make_engine(ComputeConfig(backend="dask"))


def test_worker_counts_above_the_cpus_are_capped_with_a_warning():
    cpus = os.cpu_count() or 1
    with pytest.warns(UserWarning, match=f"n_workers={cpus + 3} is more than the {cpus} CPU"):
        engine = make_engine(ComputeConfig(backend="processes", n_workers=cpus + 3))
    assert isinstance(engine, ProcessEngine) and engine.n_workers == cpus


def test_moments_merge_like_one_pass():
    from gmmspeech.features.framesource import Moments, shard_moments

    X = data(seed=4).astype(np.float64) * 30 + 1000  # far from zero: the merge must not cancel
    shards = ArraySource(X.astype(np.float32)).shards(1700)
    total = map_reduce(LocalEngine(), shard_moments, shards, 256)
    ref = X.astype(np.float32).astype(np.float64)
    assert total.n == len(X)
    np.testing.assert_allclose(total.mean, ref.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(total.var, ref.var(axis=0), rtol=1e-10)
    empty = Moments(0, np.zeros(5), np.zeros(5))
    assert (empty + total).n == total.n and (total + empty).n == total.n


def _worker_pid(_: object, __: object) -> int:
    return os.getpid()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_parent(tmp_path):
    """kill -9 of the process that owns a ProcessEngine leaves no worker running."""
    code = (
        "import sys, time\n"
        "from gmmspeech.engine import ProcessEngine\n"
        "from test_engine import _worker_pid\n"
        "if __name__ == '__main__':\n"
        "    e = ProcessEngine(n_workers=1)\n"
        "    print(e.map(_worker_pid, [0])[0], flush=True)\n"
        "    time.sleep(60)\n"
    )
    script = tmp_path / "owner.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    assert owner.stdout is not None
    worker = int(owner.stdout.readline())
    assert Path(f"/proc/{worker}").exists()
    owner.kill()
    owner.wait()
    deadline = time.time() + 20
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived its parent"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_blas_thread_budget_takes_the_free_cores() -> None:
    from gmmspeech.engine import blas_thread_budget

    # cores minus busy cores, at least one, at most the cores
    assert blas_thread_budget(cpus=8, load=0.0, environ={}) == 8
    assert blas_thread_budget(cpus=8, load=2.6, environ={}) == 5
    assert blas_thread_budget(cpus=2, load=1.2, environ={}) == 1
    assert blas_thread_budget(cpus=2, load=7.0, environ={}) == 1  # a busy machine: one
    # a user's explicit setting stands
    assert blas_thread_budget(cpus=8, load=0.0, environ={"OPENBLAS_NUM_THREADS": "4"}) is None
    assert blas_thread_budget(cpus=8, load=0.0, environ={"OMP_NUM_THREADS": "2"}) is None


def test_pipeline_extraction_uses_worker_processes_whatever_the_backend(monkeypatch) -> None:
    import gmmspeech.engine as engine_mod
    from gmmspeech.config.sections import ComputeConfig
    from gmmspeech.engine import extraction_compute

    monkeypatch.setattr(engine_mod.os, "cpu_count", lambda: 8)
    local = ComputeConfig()
    assert extraction_compute(local, None) == ComputeConfig(backend="processes", n_workers=4)
    monkeypatch.setattr(engine_mod.os, "cpu_count", lambda: 2)
    assert extraction_compute(local, None) == ComputeConfig(backend="processes", n_workers=2)
    assert extraction_compute(local, 3) == ComputeConfig(backend="processes", n_workers=3)
    assert extraction_compute(local, 0) == local  # the run's own process
    # a short work list runs here unless the processes were asked for
    assert extraction_compute(local, None, n_files=100) == local
    assert extraction_compute(local, None, n_files=101).backend == "processes"
    assert extraction_compute(local, 2, n_files=10).backend == "processes"
    procs = ComputeConfig(backend="processes", n_workers=1)
    assert extraction_compute(procs, None) == procs  # the configured workers stand


def test_procs_running_reads_the_kernel_count(tmp_path: Path) -> None:
    from gmmspeech.engine import procs_running

    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3 4\nctxt 99\nprocs_running 7\nprocs_blocked 0\n")
    assert procs_running(str(stat)) == 7
    stat.write_text("cpu  1 2 3 4\n")
    assert procs_running(str(stat)) is None
    assert procs_running(str(tmp_path / "missing")) is None


def test_busy_cores_is_the_lower_of_the_lagging_load_and_the_running_tasks(monkeypatch) -> None:
    import gmmspeech.engine.threads as engine_mod

    # a run that just ended still weighs 1.9 in the 1-minute average; nothing runs now but us
    monkeypatch.setattr(engine_mod.os, "getloadavg", lambda: (1.9, 1.0, 0.5))
    monkeypatch.setattr(engine_mod, "procs_running", lambda: 1)
    assert engine_mod.busy_cores(interval=0.0) == 0.0
    assert engine_mod.blas_thread_budget(cpus=2, environ={}) == 2
    # another run's two threads are running now, the average has not caught up yet
    monkeypatch.setattr(engine_mod.os, "getloadavg", lambda: (0.4, 0.1, 0.0))
    monkeypatch.setattr(engine_mod, "procs_running", lambda: 3)
    assert engine_mod.busy_cores(interval=0.0) == 0.4
    # both agree: one core busy
    monkeypatch.setattr(engine_mod.os, "getloadavg", lambda: (1.1, 1.0, 1.0))
    reads = iter([2, 9, 2, 2, 1])  # one noisy read does not decide
    monkeypatch.setattr(engine_mod, "procs_running", lambda: next(reads))
    assert engine_mod.busy_cores(interval=0.0) == 1.0
    # no /proc/stat: the load average alone
    monkeypatch.setattr(engine_mod, "procs_running", lambda: None)
    assert engine_mod.busy_cores(interval=0.0) == 1.1


def copies_seen(item, shared):
    """Engine task: counts in ``shared`` itself how many tasks this worker's copy served."""
    shared[0] += 1
    return os.getpid(), float(shared[0]), float(shared[1:].sum())


def test_a_large_shared_argument_reaches_each_worker_once(tmp_path, monkeypatch):
    # A pool pickles a task's arguments with every task: a 200 MiB model bank and 40 tasks
    # cost 39 s. Above SHARED_INLINE_BYTES it goes through one temporary file instead.
    from gmmspeech.engine import processes

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(processes.tempfile, "tempdir", None)  # re-read TMPDIR
    big = np.zeros(processes.SHARED_INLINE_BYTES // 8 + 1000)
    big[1:] = 0.5
    expected_sum = 0.5 * (big.size - 1)
    with ProcessEngine(n_workers=2) as engine:
        out = engine.map(copies_seen, range(24), big)
        streamed = list(engine.imap(copies_seen, range(24), big, window=4))
        partial = engine.imap(copies_seen, range(24), big, window=2)
        next(partial)
        partial.close()  # abandoned early: its file goes too
    assert big[0] == 0  # the parent's array is never the one the workers count in
    for results in (out, streamed):
        assert all(s == expected_sum for _, _, s in results)
        by_worker: dict[int, list[float]] = {}
        for pid, count, _ in results:
            by_worker.setdefault(pid, []).append(count)
        # one copy per worker and call: its count goes 1, 2, 3, ... (a copy per task: all 1)
        for counts in by_worker.values():
            assert sorted(counts) == list(range(1, len(counts) + 1))
    assert not list(tmp_path.glob(".gmmspeech-shared-*"))


def test_a_small_shared_argument_travels_with_each_task():
    small = np.zeros(16)
    with ProcessEngine(n_workers=2) as engine:
        out = engine.map(copies_seen, range(8), small)
    assert [c for _, c, _ in out] == [1.0] * 8
