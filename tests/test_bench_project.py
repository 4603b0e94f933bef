"""``gmmspeech bench project``: the projection's arithmetic, checked by hand.

The end-to-end test measures at tiny settings and recomputes, from the per-unit times its
JSON reports, the UBM and scoring stages in every column with the formulas written out
here (Amdahl in whole waves of tasks, transfers at the pipe or network rate). The model's
counts are checked against the real Arabic Speech Commands run: its UBM took 46 EM
iterations at K=512 and its calibration stage scored 1,620 trials.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from gmmspeech.benchmarks.projection import (
    PRESETS,
    Machine,
    Part,
    calibration_counts,
    generic_shape,
    part_seconds,
    ubm_iterations,
    waves,
)
from gmmspeech.cli.main import main

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "speaker_verification"


def _machine(**kw: float) -> Machine:
    base = dict(
        pipe_bytes_per_s=100.0,
        pipe_small_bytes_per_s=400.0,
        network_bytes_per_s=1000.0,
        dask_task_overhead_s=0.5,
        driver_cores=2,
    )
    return Machine(**{**base, **kw})  # type: ignore[arg-type]


def test_waves_and_amdahl_by_hand() -> None:
    assert waves(8, 2) == 0.5
    assert waves(3, 2) == 2 / 3  # the busier worker runs 2 of the 3 tasks
    assert waves(1, 8) == 1.0
    m = _machine()
    part = Part("x", 100.0, "engine", p=0.8, tasks=5, shared=40.0, task_results=4.0)
    # 4 workers: 20 s serial + 80 s in 2 waves of the 5 tasks (2/5 of 80 s); each task
    # carries 40 + 4 bytes through the pipe at the small-message rate of 400 B/s, all but
    # one task's while other tasks work
    one = 44 / 400
    assert part_seconds(part, m, 4, dask=False) == pytest.approx(20 + 80 * 2 / 5 + one)
    # Dask, 4 workers: the shared 40 bytes to each of the 4 first, at 1000 B/s; the same
    # compute plus 5 tasks x 0.5 s; one task's 4-byte result after it
    assert part_seconds(part, m, 4, dask=True) == pytest.approx(
        4 * 40 / 1000 + 20 + 32 + 2.5 + 4 / 1000
    )
    # when the transfers take longer than the work, they are the time
    heavy = Part("y", 1.0, "engine", p=1.0, tasks=10, shared=400.0)
    assert part_seconds(heavy, m, 2, dask=False) == pytest.approx(10 * 400 / 400)
    driver = Part("d", 10.0, "driver", p=0.5)
    assert part_seconds(driver, m, 8, dask=False) == pytest.approx(5 + 5 / 8)
    assert part_seconds(driver, m, 8, dask=True) == pytest.approx(5 + 5 / 2)  # 2 driver cores
    assert part_seconds(Part("s", 3.0, "single"), m, 8, dask=True) == 3.0


def test_large_messages_go_at_the_large_message_rate() -> None:
    m = _machine()
    part = Part("tv", 0.0, "engine", p=1.0, tasks=1, shared=2.0**24)
    assert part_seconds(part, m, 1, dask=False) == pytest.approx(2.0**24 / 100.0)


def test_a_large_shared_argument_is_paid_once_per_call_not_per_task() -> None:
    # the process pool sends a shared argument over 1 MiB through one file per call
    m = _machine()
    big = Part("bank", 10.0, "engine", p=1.0, tasks=12, calls=3, shared=2.0**24)
    # 3 calls x one 16 MiB message at 100 B/s before the work, then 12 tasks in 2 waves of
    # 6 on 2 workers (half of the 10 s); no shared bytes travel with the tasks
    assert part_seconds(big, m, 2, dask=False) == pytest.approx(3 * 2.0**24 / 100 + 5.0)
    small = Part("ubm", 10.0, "engine", p=1.0, tasks=12, calls=3, shared=2.0**19)
    per_task = 2.0**19 / 400  # small messages go with every task, at the small rate
    assert part_seconds(small, m, 2, dask=False) == pytest.approx(
        max(5.0, (36 - 3) * per_task) + 3 * per_task
    )


def test_counts_match_the_arabic_run() -> None:
    # the real run (gmmspeech run .../arabic_speech_commands/config.yaml) took 46 EM
    # iterations at K=512: 38 planned and 8 until the final stage converged
    its = ubm_iterations(512, 8)
    assert [k for k, _ in its] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert sum(n for _, n in its) == 46
    assert its[-1] == (512, 16)
    s = generic_shape(4800 / 3600, 30, 4800, 12)
    assert (s.bg_speakers, s.bg_utts, s.models, s.enroll_utts, s.test_utts) == (
        18,
        2880,
        12,
        960,
        960,
    )
    assert s.trials == 11520
    c = calibration_counts(s)  # the recipe README: 1,620 calibration trials of 18 models
    assert (c["models"], c["trials"]) == (18, 1620)


def test_presets_follow_the_recipe_configs() -> None:
    gmm = yaml.safe_load((RECIPES / "voxceleb1" / "config.yaml").read_text())
    iv = yaml.safe_load((RECIPES / "voxceleb1" / "config_ivector.yaml").read_text())
    libri = yaml.safe_load((RECIPES / "librispeech" / "config.yaml").read_text())
    for name in ("voxceleb1", "voxceleb2"):
        s = PRESETS[name]
        assert s.k == gmm["ubm"]["n_components"] == 1024
        assert s.top_c == gmm["scoring"]["top_c"]
        assert s.ivector_k == iv["ubm"]["n_components"]
        assert (s.rank, s.tv_iterations) == (iv["ivector"]["rank"], iv["ivector"]["n_iter"])
        assert (s.lda_dim, s.scorer) == (iv["backend"]["lda_dim"], iv["backend"]["scorer"])
    assert PRESETS["librispeech-960"].k == libri["ubm"]["n_components"]
    assert PRESETS["librispeech-960"].enroll_utts == 40 * libri["data"]["enroll_per_speaker"]


def test_corpus_and_hours_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "project", "--corpus", "voxceleb1", "--hours", "3"]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["bench", "project", "--hours", "3"]) == 1
    assert "--speakers" in capsys.readouterr().err


def _pipe(machine: dict[str, float], message: float, count: float) -> float:
    small = message < 8 * 2**20
    rate = machine["pipe_small_bytes_per_s"] if small else machine["pipe_bytes_per_s"]
    return count * message / rate


def test_projection_arithmetic_from_its_measured_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "project.json"
    args = ["--hours", "0.03", "--speakers", "6", "--target-speakers", "2", "--k", "8"]
    args += ["--ivector-k", "8", "--rank", "4", "--tv-iterations", "2", "--frames", "1500"]
    args += ["--workers", "3", "--dask-workers", "5", "--dask-task-overhead", "0.01"]
    # an assumed parallel fraction: the measured one of a busy machine may be 0, which
    # would leave the waves of tasks untested
    args += ["--parallel-fraction", "0.9"]
    assert main(["bench", "project", *args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Projected hours" in printed and "Assumes:" in printed
    r = json.loads(out.read_text())
    s, u, mach = r["shape"], r["measured"]["units"], r["machine"]
    assert r["columns"] == ["1 worker", "2 workers", "3 workers", "Dask 5"]
    measured = r["measured"]["parallel_fraction"]
    assert all(0.0 <= v <= 1.0 for v in measured.values())
    p = r["parallel_fraction_used"]
    assert p == dict.fromkeys(measured, 0.9)
    sec = r["measured"]["seconds"]
    assert r["measured"]["speedup_2_vs_1"]["em"] == sec["em_1_worker"] / sec["em_2_worker"]

    # the UBM stage by hand: frames of the background after VAD, the split schedule to
    # K=8 (1, 1, 2 and 2 planned iterations at K = 1, 2, 4, 8), 10 more at K=8 and one
    # data pass before EM (as K=1); the held-out re-estimates are one pass at K=8
    assert s["final_iterations"] == 10
    frames = s["bg_utts"] * (s["bg_seconds"] * 100 + 1) * s["vad_keep"]
    a, b = u["em_s_per_frame"], u["em_s_per_frame_component"]
    schedule = [(1, 1), (1, 1), (2, 1), (4, 2), (8, 12)]  # (components, iterations)
    em = frames * sum(n * (a + b * k) for k, n in schedule)
    held = frames * (a + b * 8)
    calls = sum(n for _, n in schedule)
    tasks = math.ceil(frames / 262144)
    message = 8 * (2 * 60 + 1) * 8  # the model out, its statistics back: K (2D + 1) doubles
    ubm = r["systems"]["gmm-ubm"]["stages"]["ubm"]
    assert ubm["parts"][0]["seconds"] == pytest.approx(em, rel=1e-12)
    messages = tasks * calls
    one = 2 * _pipe(mach, message, 1)  # a task's model out and statistics back
    for col, n in (("1 worker", 1), ("2 workers", 2), ("3 workers", 3)):
        work = em * ((1 - p["em"]) + p["em"] * math.ceil(tasks / n) / tasks)
        want = max(work, (messages - calls) * one) + calls * one
        want += held * ((1 - p["em"]) + p["em"] / n)
        assert ubm["seconds"][col] == pytest.approx(want, rel=1e-9), col
    net = mach["network_bytes_per_s"]
    work = em * ((1 - p["em"]) + p["em"] * math.ceil(tasks / 5) / tasks) + messages * 0.01
    one = (message + frames * 60 * 4 / tasks) / net  # statistics back, this task's frames read
    dask = 5 * message * calls / net + max(work, (messages - calls) * one) + calls * one
    dask += held * ((1 - p["em"]) + p["em"] / mach["driver_cores"])
    assert ubm["seconds"]["Dask 5"] == pytest.approx(dask, rel=1e-9)

    # scoring and enrolment at one worker: per test frame, per trial, per enrolment frame
    tf = (s["target_seconds"] * 100 + 1) * s["vad_keep"]
    score = s["test_utts"] * tf * u["score_s_per_frame"] + s["trials"] * u["score_s_per_trial"]
    bank = 2 * s["models"] * 8 * 60 * 4 + message
    n_tasks = math.ceil(s["test_utts"] / 32)
    one = _pipe(mach, bank, 1) + _pipe(mach, s["trials"] * 8 / n_tasks, 1)
    stages = r["systems"]["gmm-ubm"]["stages"]
    want = max(score, (n_tasks - 1) * one) + one
    assert stages["score"]["seconds"]["1 worker"] == pytest.approx(want, rel=1e-9)
    enroll = s["enroll_utts"] * tf * u["enroll_s_per_frame"]
    assert all(v == pytest.approx(enroll) for v in stages["enroll"]["seconds"].values())

    # the totals add up, the start-up row included
    for system in r["systems"].values():
        for col in r["columns"]:
            rows = sum(st["seconds"][col] for st in system["stages"].values())
            assert system["total"][col] == pytest.approx(rows, rel=1e-12)
    assert r["systems"]["gmm-ubm"]["stages"]["start-up"]["seconds"]["1 worker"] == pytest.approx(
        sec["pool_first_start"]
    )
    # the i-vector UBM is another model of the same size here: the same figures
    assert r["systems"]["ivector"]["stages"]["ubm"]["seconds"] == ubm["seconds"]
