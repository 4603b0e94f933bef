"""The arithmetic of ``gmmspeech bench project``: corpus shapes and the cost model.

A stage's work is a few *parts*, each a count from the corpus's :class:`Shape` times a
per-unit time measured on this machine (:mod:`.throughput`), at one worker. A part runs on
the engine (spread over workers), in the driver (on its BLAS threads) or on one thread,
and may move bytes that the work does not overlap with (models shipped to workers,
results shipped back). :func:`column_seconds` spreads the parts over N local workers or
W Dask workers (Amdahl's law with the measured parallel fraction, tasks in whole waves,
transfers overlapping the work); :func:`project` builds the parts of every stage. No measuring here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..config.features import FeatureConfig
from ..config.ivector import IVectorConfig
from ..config.models import UBMConfig
from ..decisions.backgroundtrials import MAX_SPEAKERS, MAX_TESTS_PER_SPEAKER
from ..decisions.heldout import GROUPS
from ..engine.processes import SHARED_INLINE_BYTES
from ..mixture.ubm import Schedule

#: Test utterances per scoring task and utterances per statistics task (the library's).
SCORE_UTTS_PER_TASK = 32
STATS_UTTS_PER_TASK = 32
FLOAT32, FLOAT64 = 4, 8


@dataclass(frozen=True)
class Shape:
    """What a corpus and its recipe ask of each stage.

    Utterance counts are per set as the pipeline extracts them (an utterance in both the
    enrolment and the test set is extracted twice); ``*_seconds`` are mean durations.
    """

    name: str
    description: str
    bg_speakers: int
    bg_utts: int
    bg_seconds: float
    models: int
    enroll_utts: int
    test_utts: int
    target_seconds: float
    trials: int
    vad_keep: float
    k: int
    ivector_k: int
    rank: int
    tv_iterations: int
    lda_dim: int | None
    scorer: str
    top_c: int = 5
    final_iterations: int = 10
    audio_format: str = "wav"
    n_features: int = FeatureConfig().n_features
    frames_per_second: float = 1000.0 / FeatureConfig().frame_shift_ms

    def frames_per_utt(self, seconds: float) -> float:
        """Frames an utterance of ``seconds`` keeps after VAD (centred frames: one more)."""
        return (seconds * self.frames_per_second + 1.0) * self.vad_keep

    @property
    def bg_frames(self) -> float:
        return self.bg_utts * self.frames_per_utt(self.bg_seconds)

    @property
    def target_frames_per_utt(self) -> float:
        return self.frames_per_utt(self.target_seconds)

    @property
    def audio_hours(self) -> float:
        tg = (self.enroll_utts + self.test_utts) * self.target_seconds
        return (self.bg_utts * self.bg_seconds + tg) / 3600.0

    @property
    def utts(self) -> int:
        return self.bg_utts + self.enroll_utts + self.test_utts


# VoxCeleb1: 1,211 dev speakers (148,642 utterances, 340 h: 8.2 s each), 40 test speakers
# (4,874 utterances, 11.2 h); the cleaned list veri_test2.txt has 37,611 trials. VoxCeleb2
# dev: 5,994 speakers, 1,092,009 utterances, 2,360 h (7.8 s). LibriSpeech 960 h: 2,338
# speakers, 281,241 utterances (12.3 s); test-clean 40 speakers, 2,620 utterances (7.4 s).
_VOX_TARGETS = dict(models=4874, enroll_utts=4874, test_utts=4874, target_seconds=8.27)
_VOX = dict(
    trials=37611, vad_keep=0.8, k=1024, ivector_k=512, rank=400, tv_iterations=10, lda_dim=200
)
PRESETS: dict[str, Shape] = {
    "voxceleb1": Shape(
        "voxceleb1",
        "recipes/speaker_verification/voxceleb1 (config.yaml, config_ivector.yaml): UBM on "
        "20 utterances of each of the 1,211 dev speakers, every test utterance a "
        "single-utterance model, veri_test2.txt",
        bg_speakers=1211,
        bg_utts=24220,
        bg_seconds=8.24,
        scorer="plda",
        **_VOX_TARGETS,  # type: ignore[arg-type]
        **_VOX,  # type: ignore[arg-type]
    ),
    "voxceleb2": Shape(
        "voxceleb2",
        "the voxceleb1 recipe's settings with all of VoxCeleb2 dev as background (UBM, TV "
        "and back end), tested on VoxCeleb1-O (veri_test2.txt)",
        bg_speakers=5994,
        bg_utts=1092009,
        bg_seconds=7.78,
        scorer="plda",
        **_VOX_TARGETS,  # type: ignore[arg-type]
        **_VOX,  # type: ignore[arg-type]
    ),
    "librispeech-960": Shape(
        "librispeech-960",
        "recipes/speaker_verification/librispeech settings (K=512; i-vector defaults) with "
        "the whole 960 h training set as background; test-clean: 40 models on 5 "
        "utterances, every other utterance tested against every model",
        bg_speakers=2338,
        bg_utts=281241,
        bg_seconds=12.3,
        models=40,
        enroll_utts=200,
        test_utts=2420,
        target_seconds=7.42,
        trials=96800,
        vad_keep=0.85,
        k=512,
        ivector_k=512,
        rank=400,
        tv_iterations=10,
        lda_dim=None,
        scorer="plda",
        audio_format="flac",
    ),
}


def generic_shape(
    hours: float,
    speakers: int,
    utterances: int | None = None,
    target_speakers: int | None = None,
    enroll_fraction: float = 0.5,
) -> Shape:
    """A corpus of ``hours`` of audio from ``speakers`` speakers split as the Arabic and
    LibriSpeech recipes split theirs: ``target_speakers`` (default a third, at most 40)
    enrolled on ``enroll_fraction`` of their utterances and tested on the rest, every
    model against every test utterance; the others are the background. Utterances default
    to 8 s each. Settings are the config defaults (``--k`` etc. override them)."""
    n = utterances if utterances is not None else max(speakers, round(hours * 3600 / 8.0))
    t = target_speakers if target_speakers is not None else max(1, min(40, speakers // 3))
    per_spk = n / speakers
    target_utts = round(t * per_spk)
    enroll = max(t, round(enroll_fraction * target_utts))
    test = max(1, target_utts - enroll)
    seconds = hours * 3600.0 / n
    ub, iv = UBMConfig(), IVectorConfig()
    return Shape(
        "custom",
        f"{hours:g} h, {speakers} speakers, {n} utterances of {seconds:.1f} s; {t} target "
        f"speakers, each enrolled on {enroll_fraction:g} of its utterances and tested on "
        f"the rest",
        bg_speakers=speakers - t,
        bg_utts=n - target_utts,
        bg_seconds=seconds,
        models=t,
        enroll_utts=enroll,
        test_utts=test,
        target_seconds=seconds,
        trials=t * test,
        vad_keep=0.8,
        k=ub.n_components,
        ivector_k=ub.n_components,
        rank=iv.rank,
        tv_iterations=iv.n_iter,
        lda_dim=None,
        scorer="plda",
    )


@dataclass
class Part:
    """Some of a stage's work: ``seconds`` at one worker (one thread).

    ``where`` is ``engine`` (spread over workers in ``tasks`` tasks per call), ``driver``
    (on the driver's threads) or ``single`` (one thread whatever the machine); ``p`` is the
    parallel fraction. Bytes, per call (``calls`` of the engine's map): ``shared`` goes
    with every task to local workers when it is small, once per call through a file when it
    is larger than the pool's :data:`~gmmspeech.engine.processes.SHARED_INLINE_BYTES`, and
    once to each Dask worker; ``task_results`` come
    back from every task. ``results`` come back in all; ``inputs`` are what Dask workers
    read from shared storage (local workers read the local disk). ``task_seconds`` is work
    that every task does once (per call), whatever its size; with ``tasks_per_worker`` the
    task count follows the workers (the TV E-step: two each; one in-process); with
    ``batched_items``, the tasks are batches of those items as extraction makes them
    (:func:`extraction_tasks`).
    """

    what: str
    seconds: float
    where: str
    p: float = 0.0
    tasks: int = 1
    calls: int = 1
    shared: float = 0.0
    task_results: float = 0.0
    results: float = 0.0
    inputs: float = 0.0
    task_seconds: float = 0.0
    tasks_per_worker: int = 0
    batched_items: int = 0


@dataclass
class Machine:
    """The measured rates the columns need besides the parts.

    The pipe to local workers moves small messages faster per byte than large ones
    (fresh pages for every large buffer): messages under :data:`SMALL_MESSAGE` bytes go
    at ``pipe_small_bytes_per_s``, larger ones at ``pipe_bytes_per_s``.
    """

    pipe_bytes_per_s: float
    pipe_small_bytes_per_s: float
    network_bytes_per_s: float
    dask_task_overhead_s: float
    driver_cores: int
    startup_s: dict[str, float] = field(default_factory=dict)


#: Messages to local workers below this size move at the small-message rate.
SMALL_MESSAGE = 8 * 2**20


def pipe_seconds(m: Machine, message: float, count: float) -> float:
    """Seconds to move ``count`` messages of ``message`` bytes through the pipe."""
    if message <= 0 or count <= 0:
        return 0.0
    rate = m.pipe_small_bytes_per_s if message < SMALL_MESSAGE else m.pipe_bytes_per_s
    return count * message / rate


def waves(tasks: int, workers: int) -> float:
    """The fraction of the one-worker time that ``tasks`` equal tasks take on ``workers``."""
    return math.ceil(tasks / workers) / tasks


def extraction_tasks(utts: int, workers: int) -> int:
    """Tasks of an extraction of ``utts`` utterances on ``workers``: batches of up to 16,
    at least 8 batches per worker (``gmmspeech.features.extraction``)."""
    per_batch = max(1, min(16, utts // (workers * 8)))
    return math.ceil(utts / per_batch)


def part_seconds(part: Part, m: Machine, workers: int, dask: bool) -> float:
    """Seconds of ``part`` on ``workers`` local workers, or on a Dask cluster of that many."""
    if part.where == "single":
        return part.seconds
    if part.where == "driver":
        n = m.driver_cores if dask else workers
        return part.seconds * ((1.0 - part.p) + part.p / n)
    tasks = part.tasks
    if part.tasks_per_worker:
        tasks = 1 if workers == 1 and not dask else part.tasks_per_worker * workers
    if part.batched_items:
        tasks = extraction_tasks(part.batched_items, workers)
    compute = part.seconds * ((1.0 - part.p) + part.p * waves(tasks, workers))
    compute += math.ceil(tasks / workers) * part.calls * part.task_seconds
    # transfers overlap the work of other tasks, except a call's first task's input and
    # its last task's output: the longer of the two, plus one task's transfers per call
    messages = tasks * part.calls
    if dask:
        net = m.network_bytes_per_s
        broadcast = workers * part.shared * part.calls / net  # before any task starts
        one = (part.task_results + (part.results + part.inputs) / messages) / net
        compute += messages * m.dask_task_overhead_s
    else:
        # a large shared argument is written once per call and read by the workers at once
        once = part.shared > SHARED_INLINE_BYTES
        broadcast = part.calls * pipe_seconds(m, part.shared, 1) if once else 0.0
        one = (
            (0.0 if once else pipe_seconds(m, part.shared, 1))
            + pipe_seconds(m, part.task_results, 1)
            + pipe_seconds(m, part.results / messages, 1)
        )
    return broadcast + max(compute, (messages - part.calls) * one) + part.calls * one


def column_seconds(parts: list[Part], m: Machine, workers: int, dask: bool) -> float:
    return sum(part_seconds(p, m, workers, dask) for p in parts)


def ubm_iterations(k: int, final_extra: int) -> list[tuple[int, int]]:
    """(components, EM iterations) of each stage of a UBM to ``k`` components: the
    library's schedule, with ``final_extra`` iterations after the planned ones of the last
    stage (it stops at convergence, at most ``final_max_iterations`` later)."""
    plan = Schedule.from_config(UBMConfig(n_components=k))
    its = list(plan.planned)
    its[-1] += min(final_extra, plan.final_max_iterations)
    return list(zip(plan.sizes, its, strict=True))


def _gmm_bytes(k: int, d: int) -> float:
    return (k * (2 * d + 1)) * FLOAT64


def _tv_bytes(k: int, d: int, r: int) -> tuple[float, float]:
    """Bytes of the TV E-step's shared precomputation and of one task's accumulators."""
    rp = r * (r + 1) / 2
    return (k * d * r + k * rp) * FLOAT64, (k * rp + k * d * r + rp + 2) * FLOAT64


def ubm_parts(s: Shape, u: dict[str, float], p: dict[str, float], k: int) -> list[Part]:
    """EM from one Gaussian to ``k`` components on the background, the pass over the data
    before it (as one iteration at K=1), and the held-out re-estimates (one pass at K, in
    the driver)."""
    frames, d = s.bg_frames, s.n_features
    its = [(1, 1), *ubm_iterations(k, s.final_iterations)]
    per_frame = sum(n * (u["em_s_per_frame"] + u["em_s_per_frame_component"] * kk) for kk, n in its)
    shards = max(1, math.ceil(frames / UBMConfig().shard_frames))
    calls = sum(n for _, n in its)
    em = Part(
        "EM",
        frames * per_frame,
        "engine",
        p["em"],
        tasks=shards,
        calls=calls,
        shared=_gmm_bytes(k, d),
        task_results=_gmm_bytes(k, d),
        inputs=calls * frames * d * FLOAT32,
    )
    one = frames * (u["em_s_per_frame"] + u["em_s_per_frame_component"] * k)
    return [em, Part("held-out UBMs", one, "driver", p["em"])]


def score_part(
    s: Shape, u: dict[str, float], p: dict[str, float], tests: float, trials: float, models: float
) -> Part:
    frames = tests * s.target_frames_per_utt
    bank = 2 * models * s.k * s.n_features * FLOAT32 + _gmm_bytes(s.k, s.n_features)
    return Part(
        "score",
        frames * u["score_s_per_frame"] + trials * u["score_s_per_trial"],
        "engine",
        p["score"],
        tasks=max(1, math.ceil(tests / SCORE_UTTS_PER_TASK)),
        shared=bank,
        results=trials * FLOAT64,
        inputs=frames * s.n_features * FLOAT32,
    )


def calibration_counts(s: Shape) -> dict[str, float]:
    """Models, their enrolment utterances, test utterances and trials of the background
    calibration trials (:mod:`gmmspeech.decisions.backgroundtrials`, in two groups)."""
    spk = min(s.bg_speakers, MAX_SPEAKERS)
    per_model = max(1, round(s.enroll_utts / s.models))
    rest = max(1.0, s.bg_utts / s.bg_speakers - per_model)
    tests = min(float(MAX_TESTS_PER_SPEAKER), rest)
    return {
        "models": spk,
        "enroll_utts": spk * per_model,
        "test_utts": spk * tests,
        "trials": GROUPS * (spk / GROUPS) * (spk / GROUPS * tests),
    }


def gmm_stages(s: Shape, u: dict[str, float], p: dict[str, float]) -> dict[str, list[Part]]:
    """The parts of the GMM-UBM system's stages (normalisation: none in every recipe)."""
    tf = s.target_frames_per_utt
    c = calibration_counts(s)
    return {
        "extract": [extract_part(s, u, p)],
        "ubm": ubm_parts(s, u, p, s.k),
        "enroll": [Part("MAP", s.enroll_utts * tf * u["enroll_s_per_frame"], "single")],
        "score": [score_part(s, u, p, s.test_utts, s.trials, s.models)],
        "calibrate": [
            Part("MAP", c["enroll_utts"] * tf * u["enroll_s_per_frame"], "single"),
            score_part(s, u, p, c["test_utts"], c["trials"], c["models"] / GROUPS),
        ],
    }


def extract_part(s: Shape, u: dict[str, float], p: dict[str, float]) -> Part:
    frames = s.bg_frames + (s.enroll_utts + s.test_utts) * s.target_frames_per_utt
    return Part(
        "features",
        s.audio_hours * 3600.0 * u["extract_s_per_audio_s"],
        "engine",
        p["extract"],
        batched_items=s.utts,
        results=frames * s.n_features * FLOAT32,
        inputs=s.audio_hours * 3600.0 * FeatureConfig().sample_rate * 2,
    )


def stats_part(s: Shape, u: dict[str, float], p: dict[str, float], utts: float, fpu: float) -> Part:
    k, d = s.ivector_k, s.n_features
    return Part(
        "statistics",
        utts * fpu * u["stats_s_per_frame"],
        "engine",
        p["stats"],
        tasks=max(1, math.ceil(utts / STATS_UTTS_PER_TASK)),
        shared=_gmm_bytes(k, d),
        results=utts * k * (d + 1) * FLOAT64,
        inputs=utts * fpu * d * FLOAT32,
    )


def tv_parts(s: Shape, u: dict[str, float], p: dict[str, float], utts: float) -> list[Part]:
    """``tv_iterations`` EM iterations on ``utts`` utterances: the driver's precomputation
    and M-step, and the E-step on the engine (two tasks per worker)."""
    k, d, r, n = s.ivector_k, s.n_features, s.rank, s.tv_iterations
    shared, acc = _tv_bytes(k, d, r)
    return [
        Part("precompute + M-step", n * u["tv_fixed_s"], "driver", p["tv_driver"]),
        Part(
            "E-step",
            n * utts * u["tv_s_per_utt"],
            "engine",
            p["stats"],
            calls=n,
            shared=shared,
            task_results=acc,
            inputs=n * utts * k * (d + 1) * FLOAT64,
            task_seconds=u["tv_s_per_task"],
            tasks_per_worker=2,
        ),
    ]


def ivector_parts(s: Shape, u: dict[str, float], p: dict[str, float], utts: float) -> list[Part]:
    """i-vectors of ``utts`` utterances, per set (three calls, each with a precomputation)."""
    shared, _ = _tv_bytes(s.ivector_k, s.n_features, s.rank)
    return [
        Part("precompute", 3 * u["tv_precompute_s"], "driver", p["tv_driver"]),
        Part(
            "posterior means",
            utts * u["ivector_s_per_utt"],
            "engine",
            p["stats"],
            calls=3,
            shared=shared,
            results=utts * s.rank * FLOAT64,
            inputs=utts * s.ivector_k * (s.n_features + 1) * FLOAT64,
            tasks_per_worker=2,
        ),
    ]


def times(part: Part, n: int) -> Part:
    """``part`` done ``n`` times over (as many calls, ``n`` times the seconds and bytes)."""
    return dataclasses.replace(
        part,
        seconds=n * part.seconds,
        calls=n * part.calls,
        results=n * part.results,
        inputs=n * part.inputs,
    )


def ivector_stages(s: Shape, u: dict[str, float], p: dict[str, float]) -> dict[str, list[Part]]:
    """The parts of the i-vector system's stages."""
    bf, tf = s.frames_per_utt(s.bg_seconds), s.target_frames_per_utt
    tg = s.enroll_utts + s.test_utts
    half = s.bg_utts * (GROUPS - 1) / GROUPS
    held = [
        stats_part(s, u, p, s.bg_utts, bf),
        *tv_parts(s, u, p, half),
        *ivector_parts(s, u, p, s.bg_utts),
    ]
    caltv = [times(x, GROUPS) for x in held]
    pairs = s.models * s.test_utts + calibration_counts(s)["trials"]
    return {
        "extract": [extract_part(s, u, p)],
        "ubm": ubm_parts(s, u, p, s.ivector_k),
        "stats": [
            stats_part(s, u, p, s.bg_utts, bf),
            stats_part(s, u, p, tg, tf),
        ],
        "tv": tv_parts(s, u, p, s.bg_utts),
        "caltv": caltv,
        "ivectors": ivector_parts(s, u, p, s.utts),
        "backend": [
            # the back end, and one on each half of the background for the calibration
            Part("fit", 2 * s.bg_utts * u["backend_s_per_utt"], "driver", p["backend"]),
            Part("score", pairs * u["backend_s_per_pair"], "driver", p["backend"]),
        ],
    }


def columns(workers: int) -> list[tuple[str, int, bool]]:
    """(label, workers, dask) of the printed columns."""
    cols = [("1 worker", 1, False), ("2 workers", 2, False)]
    if workers not in (1, 2):
        cols.append((f"{workers} workers", workers, False))
    return cols


def project(
    s: Shape,
    units: dict[str, float],
    parallel: dict[str, float],
    m: Machine,
    workers: int,
    dask_workers: int,
    systems: tuple[str, ...] = ("gmm-ubm", "ivector"),
) -> dict[str, Any]:
    """Seconds per stage and in total of each system, for 1, 2 and ``workers`` local
    workers and a Dask cluster of ``dask_workers``; with every stage's parts."""
    cols = [*columns(workers), (f"Dask {dask_workers}", dask_workers, True)]
    builders = {"gmm-ubm": gmm_stages, "ivector": ivector_stages}
    out: dict[str, Any] = {}
    for name in systems:
        stages = builders[name](s, units, parallel)
        table: dict[str, Any] = {}
        for stage, parts in stages.items():
            table[stage] = {
                "parts": [dataclasses.asdict(x) for x in parts],
                "seconds": {c: column_seconds(parts, m, n, dk) for c, n, dk in cols},
            }
        start = {c: m.startup_s.get("dask" if dk else "local", 0.0) for c, _, dk in cols}
        table["start-up"] = {"parts": [], "seconds": start}
        total = {c: sum(v["seconds"][c] for v in table.values()) for c, _, _ in cols}
        out[name] = {"stages": table, "total": total}
    return out
