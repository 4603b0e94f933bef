"""Short runs of the stages' own code on synthetic data of a corpus's shape, for
``gmmspeech bench project``: per-unit times at one worker, and how they scale to two.

Each engine stage runs the function the pipeline calls (``extract_to_store``,
``accumulate_shard`` through ``map_reduce``, ``score_trials``, ``compute_stats``) on a pool
of one worker and on a pool of two, after a warm-up; the 1-vs-2 ratio gives the parallel
fraction. These runs move a few MiB, which overlap the work; the model adds the transfers
that grow with a corpus, at the rates measured here for the pipe. Driver-side work (the
total-variability precomputation and M-step, the back end) runs at one and at two BLAS
threads; MAP enrolment runs on one thread, as in the pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..config.ivector import BackendConfig
from ..config.models import UBMConfig
from ..decisions.scoring import score_trials
from ..engine import (
    DaskEngine,
    Engine,
    ProcessEngine,
    blas_thread_budget,
    blas_threads,
    map_reduce,
)
from ..errors import ConfigError
from ..features.extraction import extract_to_store
from ..features.framesource import as_source
from ..features.store import FeatureStore, write_store
from ..ivector.backend import Backend
from ..ivector.stats import compute_stats
from ..ivector.tv import TotalVariability, precompute
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll
from ..mixture.ubm import accumulate_shard
from .em import random_gmm
from .features import write_synthetic_datadir
from .projection import (
    FLOAT64,
    SCORE_UTTS_PER_TASK,
    STATS_UTTS_PER_TASK,
    Shape,
    extraction_tasks,
    waves,
)
from .tv import SyntheticStats, time_phases

log = logging.getLogger(__name__)

#: Frames of the synthetic feature store (rounded up to whole tasks of 64 utterances).
DEFAULT_FRAMES = 32_000
#: Seconds of synthetic audio extracted.
EXTRACT_AUDIO_SECONDS = 480.0
EXTRACT_MAX_UTTS = 256
#: Bytes sent to and from a worker to measure the pipe: large and small messages.
PIPE_BYTES = 64 * 2**20
SMALL_PIPE_BYTES = 2**20
#: Components of the second point of the UBM E-step's cost ``a + b k``.
SMALL_K = 4
#: Utterances per batch of the timed TV E-step; models of the timed scoring.
TV_BATCH = 32
SCORE_MODELS = 32


def nbytes_task(_: object, shared: np.ndarray) -> int:
    """Engine task: the size of what was sent (the pipe measurement's outbound half)."""
    return int(shared.nbytes)


def ones_task(n: int, _: object) -> np.ndarray:
    """Engine task: ``n`` bytes of float64 back (the pipe measurement's inbound half)."""
    return np.ones(n // FLOAT64)


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Seconds of ``fn(*args, **kwargs)``."""
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def parallel_fraction(c1: float, c2: float, share: float = 0.5) -> float:
    """Amdahl's parallel fraction ``p`` from the work's seconds on one worker or thread
    (``c1``) and on two (``c2``): ``c2 = c1 (1 - p + p share)``, where ``share`` is the part
    of the parallel work the busier of the two did (1/2, or more when the tasks were an
    odd number: see :func:`.projection.waves`); clipped to [0, 1]."""
    if share >= 1.0 or c1 <= 0:
        return 0.0
    return float(min(1.0, max(0.0, (1.0 - c2 / c1) / (1.0 - share))))


class Measurement:
    """The figures of one measuring run: raw seconds, per-unit times, parallel fractions.

    Every timed run is repeated ``repeat`` times and its median kept.
    """

    def __init__(self, repeat: int = 1) -> None:
        self.repeat = repeat
        self.seconds: dict[str, float] = {}
        self.units: dict[str, float] = {}
        self.parallel: dict[str, float] = {}
        self.speedup: dict[str, float] = {}
        self.notes: list[str] = []
        self.pipe_bytes_per_s = 0.0
        self.pipe_small_bytes_per_s = 0.0

    def time(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """Median seconds of ``repeat`` calls ``fn(*args, **kwargs)``."""
        return statistics.median(_timed(fn, *args, **kwargs) for _ in range(self.repeat))

    def record(self, name: str, t: float) -> float:
        """Record ``t`` seconds as ``name``. It is taken as the work's time: the measured
        runs move a few MiB, which overlap the work of other tasks."""
        self.seconds[name] = t
        return t

    def scaling(self, stage: str, t1: float, t2: float, tasks: int) -> None:
        self.speedup[stage] = t1 / t2
        self.parallel[stage] = parallel_fraction(t1, t2, waves(tasks, 2))

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "units": self.units,
            "parallel_fraction": self.parallel,
            "speedup_2_vs_1": self.speedup,
            "pipe_bytes_per_s": self.pipe_bytes_per_s,
            "pipe_small_bytes_per_s": self.pipe_small_bytes_per_s,
            "notes": self.notes,
        }


def _pipe(m: Measurement, p1: ProcessEngine) -> None:
    """Bytes per second to a worker and back: 1 MiB messages and 64 MiB ones."""
    p1.map(nbytes_task, [0], np.ones(1024))  # warm-up
    for size, key in ((SMALL_PIPE_BYTES, "small"), (PIPE_BYTES, "large")):
        big = np.ones(size // FLOAT64)
        n = max(1, PIPE_BYTES // size // 4)
        out = m.time(p1.map, nbytes_task, [0] * n, big)
        back = m.time(p1.map, ones_task, [size] * n)
        m.seconds[f"pipe_{key}_out"], m.seconds[f"pipe_{key}_back"] = out, back
        rate = 2 * n * size / (out + back)
        if key == "small":
            m.pipe_small_bytes_per_s = rate
        else:
            m.pipe_bytes_per_s = rate


def _extract(m: Measurement, s: Shape, tmp: Path, pools: tuple[ProcessEngine, ...]) -> None:
    n = 2 * math.ceil(min(EXTRACT_MAX_UTTS, max(8.0, EXTRACT_AUDIO_SECONDS / s.target_seconds)) / 2)
    ext = s.audio_format
    warm = write_synthetic_datadir(tmp / "warm", 4, min(s.target_seconds, 2.0), seed=1, ext=ext)
    data = write_synthetic_datadir(tmp / "audio", n, s.target_seconds, seed=2, ext=ext)
    outs = iter(range(10**6))
    reports = []

    def once(pool: ProcessEngine) -> None:
        reports.append(extract_to_store(data, tmp / f"extract{next(outs)}.h5", engine=pool))

    t = []
    for i, pool in enumerate(pools, 1):
        extract_to_store(warm, tmp / f"warm{i}.h5", engine=pool)
        t.append(m.record(f"extract_{i}_worker", m.time(once, pool)))
    m.units["extract_s_per_audio_s"] = t[0] / reports[-1].audio_seconds
    m.seconds["extract_audio_seconds"] = reports[-1].audio_seconds
    m.scaling("extract", t[0], t[1], extraction_tasks(n, 2))


def _utterances(n: int, frames: int, d: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    truth = random_gmm(32, d, rng)
    for i in range(n):
        x, _ = truth.sample(frames, rng)
        yield f"spk{i // 4:04d}-utt{i:05d}", x.astype(np.float32)


def _em(m: Measurement, s: Shape, store: FeatureStore, pools: tuple[ProcessEngine, ...]) -> None:
    """One dense EM E-step (the UBM stage's ``map_reduce`` of ``accumulate_shard``) at
    K and at K=4, for the cost per frame ``a + b k``."""
    rng = np.random.default_rng(3)
    chunk = UBMConfig().chunk_size
    shards = as_source(store).shards(math.ceil(store.n_frames / 8))
    n = store.n_frames
    big, small = random_gmm(s.k, s.n_features, rng), random_gmm(SMALL_K, s.n_features, rng)
    t = []
    for i, pool in enumerate(pools, 1):
        map_reduce(pool, accumulate_shard, shards, (small, chunk))  # warm-up
        t.append(
            m.record(
                f"em_{i}_worker", m.time(map_reduce, pool, accumulate_shard, shards, (big, chunk))
            )
        )
    ts = m.time(map_reduce, pools[0], accumulate_shard, shards, (small, chunk))
    cs = m.record("em_small_k_1_worker", ts)
    b = max(0.0, (t[0] - cs) / (n * (big.n_components - SMALL_K)))
    m.units["em_s_per_frame_component"] = b
    m.units["em_s_per_frame"] = max(0.0, cs / n - b * SMALL_K)
    m.seconds["em_frames"], m.seconds["em_tasks"] = n, len(shards)
    m.scaling("em", t[0], t[1], len(shards))


def _enroll_and_score(
    m: Measurement, s: Shape, store: FeatureStore, pools: tuple[ProcessEngine, ...]
) -> None:
    rng = np.random.default_rng(4)
    ubm = random_gmm(s.k, s.n_features, rng)
    ids = list(store)
    per_model = max(1, round(s.enroll_utts / s.models))
    spk2utt = {f"m{j:05d}": ids[j : j + per_model] for j in range(0, len(ids), per_model)}
    m.units["enroll_s_per_frame"] = m.time(enroll, ubm, store, spk2utt) / store.n_frames
    m.seconds["enroll"] = m.units["enroll_s_per_frame"] * store.n_frames
    names = [f"model{j}" for j in range(SCORE_MODELS)]
    offsets = 0.1 * rng.standard_normal((SCORE_MODELS, s.k, s.n_features))
    models = SpeakerModels(ubm, names, means=ubm.means[None] + offsets)
    tests = ids[: 2 * SCORE_UTTS_PER_TASK]
    frames = sum(store.num_frames(u) for u in tests)
    one = [(names[0], u) for u in tests]
    every = [(x, u) for u in tests for x in names]
    tiny = random_gmm(4, s.n_features, rng)
    tiny_models = SpeakerModels(tiny, names[:1], means=tiny.means[None])

    def once(pool: ProcessEngine, trials: list[tuple[str, str]]) -> None:
        score_trials(ubm, models, store, trials, engine=pool, method="topc", top_c=s.top_c)

    t = []
    for i, pool in enumerate(pools, 1):
        score_trials(tiny, tiny_models, store, one, engine=pool, method="topc", top_c=2)
        t.append(m.record(f"score_{i}_worker", m.time(once, pool, every)))
    t_one = m.record("score_1_model_1_worker", m.time(once, pools[0], one))
    per_trial = max(0.0, (t[0] - t_one) / (len(every) - len(one)))
    m.units["score_s_per_trial"] = per_trial
    m.units["score_s_per_frame"] = max(0.0, (t_one - per_trial * len(one)) / frames)
    m.scaling("score", t[0], t[1], 2)


def _stats(
    m: Measurement, s: Shape, store: FeatureStore, tmp: Path, pools: tuple[ProcessEngine, ...]
) -> DiagGMM:
    rng = np.random.default_rng(5)
    ubm, tiny = random_gmm(s.ivector_k, s.n_features, rng), random_gmm(4, s.n_features, rng)
    n_utts = len(store)
    tasks = math.ceil(n_utts / STATS_UTTS_PER_TASK)
    outs = iter(range(10**6))

    def once(pool: ProcessEngine) -> None:
        compute_stats(ubm, store, engine=pool, out=tmp / f"stats{next(outs)}.h5")

    t = []
    for i, pool in enumerate(pools, 1):
        compute_stats(tiny, store, engine=pool, out=tmp / f"warm_stats{i}.h5")
        t.append(m.record(f"stats_{i}_worker", m.time(once, pool)))
    m.units["stats_s_per_frame"] = t[0] / store.n_frames
    m.scaling("stats", t[0], t[1], tasks)
    return ubm


def _two_threads(m: Measurement, what: str) -> bool:
    """Whether two BLAS threads can be timed: on a machine whose other work leaves fewer
    than two cores free, OpenBLAS's spinning threads make two threads many times slower
    than one (a back end took 75 s against 5.5 s at load 10 on 2 cores), which says
    nothing about a machine with two free cores; then the scaling is not measured."""
    budget = blas_thread_budget()
    if budget is None or budget >= 2:
        return True
    m.notes.append(
        f"{what}: two threads not timed (fewer than two cores free); parallel fraction 0"
    )
    return False


def _tv(m: Measurement, s: Shape, ubm: DiagGMM) -> None:
    """The TV iteration's phases (the functions of its E-step task): three batches at one
    thread, one at two threads; and ``transform`` (i-vectors) on one batch.

    The first batch of a task also touches the fresh accumulators' pages (about as long
    as two batches at K=512, R=400): that is a cost per task, apart from the cost per
    utterance of the later batches. The first precomputation of a process is slower than
    the later ones (page faults of its first large arrays): a warm-up takes it.
    """
    frames = max(1, round(s.frames_per_utt(s.bg_seconds)))
    three = SyntheticStats(ubm, 3 * TV_BATCH, frames, seed=6)
    one = SyntheticStats(ubm, TV_BATCH, frames, seed=6)
    tv = TotalVariability(rank=s.rank, n_iter=1, batch_size=TV_BATCH)
    tv.ubm_, tv.feature_config_ = ubm, None
    tv.T_ = tv._init(ubm)
    batches: list[float] = []
    with blas_threads(1):
        m.seconds["tv_warm_up"] = _timed(precompute, tv.T_, ubm.variances)
        ph1 = time_phases(tv, three, batches)
        transform = m.time(tv.transform, one)
    fixed = [ph1["precompute"] + ph1["m_step"]] * 2
    m.seconds["tv_phases_1_thread"] = sum(ph1.values())
    if _two_threads(m, "TV precomputation and M-step"):
        with blas_threads(2):
            ph2 = time_phases(tv, one)
        fixed[1] = ph2["precompute"] + ph2["m_step"]
        m.seconds["tv_phases_2_threads"] = sum(ph2.values())
    steady = sum(batches[1:]) / (len(batches) - 1)
    m.units["tv_s_per_utt"] = steady / TV_BATCH
    m.units["tv_s_per_task"] = max(0.0, batches[0] - steady)
    m.units["tv_precompute_s"] = ph1["precompute"]
    m.units["tv_fixed_s"] = fixed[0]
    m.units["ivector_s_per_utt"] = max(0.0, transform - ph1["precompute"]) / TV_BATCH
    m.speedup["tv_driver"] = fixed[0] / fixed[1]
    m.parallel["tv_driver"] = parallel_fraction(fixed[0], fixed[1])


def _backend(m: Measurement, s: Shape) -> None:
    rng = np.random.default_rng(7)
    per_spk = int(min(10, max(2, round(s.bg_utts / s.bg_speakers))))
    # LDA needs more speakers than its dimensions, PLDA more than its input's
    dim = s.lda_dim or (s.rank if s.scorer == "plda" else 0)
    speakers = max(50, dim + 1)
    y = np.repeat(np.arange(speakers), per_spk)
    x = rng.standard_normal((speakers, s.rank))[y] + rng.standard_normal((y.size, s.rank))
    cfg = BackendConfig(lda_dim=s.lda_dim, scorer=s.scorer)
    n_models, n_tests = 100, 500
    enrol = [rng.standard_normal((1, s.rank)) for _ in range(n_models)]
    tests = rng.standard_normal((n_tests, s.rank))
    seconds = []
    for threads in (1, 2) if _two_threads(m, "back end") else (1,):
        with blas_threads(threads):
            be = Backend(cfg)
            fit = m.time(be.fit, x, y)
            score = m.time(be.score, enrol, tests)
        if threads == 1:
            m.units["backend_s_per_utt"] = fit / y.size
            m.units["backend_s_per_pair"] = score / (n_models * n_tests)
        seconds.append(fit + score)
        m.seconds[f"backend_{threads}_thread"] = fit + score
    m.speedup["backend"] = seconds[0] / seconds[-1]
    m.parallel["backend"] = parallel_fraction(seconds[0], seconds[-1])


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own INFO lines off (its loggers set their levels when it is imported)."""
    if logging.getLogger("gmmspeech").getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
    loggers = [logging.getLogger(n) for n in ["distributed", *names]]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _dask(m: Measurement, s: Shape, store: FeatureStore) -> tuple[float, float] | None:
    """(start-up seconds, overhead per task) of a local Dask cluster of two workers against
    the pool of two, on the EM E-step; None without dask installed."""
    rng = np.random.default_rng(3)
    chunk = UBMConfig().chunk_size
    shards = as_source(store).shards(math.ceil(store.n_frames / 8))
    big, tiny = random_gmm(s.k, s.n_features, rng), random_gmm(4, s.n_features, rng)
    try:
        t0 = time.perf_counter()
        engine: Engine = DaskEngine(n_workers=2, threads_per_worker=1)
    except ConfigError as exc:
        m.notes.append(f"Dask not measured: {exc}")
        return None
    with contextlib.closing(engine), _quiet_dask():
        map_reduce(engine, accumulate_shard, shards, (tiny, chunk))  # start and warm up
        start = time.perf_counter() - t0
        t = m.time(map_reduce, engine, accumulate_shard, shards, (big, chunk))
    m.seconds["dask_start"], m.seconds["em_dask_2_workers"] = start, t
    return start, max(0.0, (t - m.seconds["em_2_worker"]) / len(shards))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The library's INFO lines off while measuring (DEBUG, if asked, stays)."""
    names = ("gmmspeech",)
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    debug = logging.getLogger("gmmspeech").getEffectiveLevel() <= logging.DEBUG
    try:
        if not debug:
            for lg in loggers:
                lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def measure(
    s: Shape,
    frames: int = DEFAULT_FRAMES,
    repeat: int = 1,
    dask: bool = True,
    systems: tuple[str, ...] = ("gmm-ubm", "ivector"),
    say: Callable[[str], None] = print,
) -> tuple[Measurement, tuple[float, float] | None]:
    """Measure every per-unit time the projection of ``s`` needs (see the module).

    Returns the figures, and (start-up seconds, overhead per task) of a local Dask
    cluster when ``dask`` (None without it, or without Dask installed).
    """
    m = Measurement(repeat)
    fpu = max(1, round(s.target_frames_per_utt))
    n_utts = 64 * math.ceil(max(frames / fpu, 1.0) / 64)
    say(f"Measuring on synthetic data ({n_utts} utterances of {fpu} frames, D={s.n_features}):")
    with (
        quiet(),
        tempfile.TemporaryDirectory(prefix="gmmspeech-bench-project-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        p1 = stack.enter_context(ProcessEngine(1))
        p1.start()
        m.seconds["pool_first_start"] = time.perf_counter() - t0
        p2 = stack.enter_context(ProcessEngine(2))
        m.seconds["pool_start"] = _timed(p2.start)
        pools = (p1, p2)

        def step(label: str, fn: Callable[[], Any]) -> Any:
            t = time.perf_counter()
            out = fn()
            say(f"  {label}: {time.perf_counter() - t:.1f} s")
            return out

        step("pipe", lambda: _pipe(m, p1))
        step("extract", lambda: _extract(m, s, tmp, pools))
        write_store(tmp / "feats.h5", _utterances(n_utts, fpu, s.n_features, 8))
        store = stack.enter_context(FeatureStore(tmp / "feats.h5"))
        step(f"UBM E-step (K={s.k})", lambda: _em(m, s, store, pools))
        if "gmm-ubm" in systems:
            step("enrol and score", lambda: _enroll_and_score(m, s, store, pools))
        if "ivector" in systems:
            ubm = step(f"statistics (K={s.ivector_k})", lambda: _stats(m, s, store, tmp, pools))
            step(f"total variability (R={s.rank})", lambda: _tv(m, s, ubm))
            step("back end", lambda: _backend(m, s))
        dk = step("Dask", lambda: _dask(m, s, store)) if dask else None
    return m, dk
