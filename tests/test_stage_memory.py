"""Per-stage peak memory: the peak of the stage itself, not of the process so far."""

from __future__ import annotations

import multiprocessing as mp
import sys

import numpy as np
import pytest

from gmmspeech.pipeline.report import StageMemory

MIB = 2**20
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


def _touch(n_mib: int) -> float:
    x = np.ones(n_mib * MIB, dtype=np.uint8)  # every page written: resident
    return float(x[::4096].sum())


def _child_holds(n_mib: int) -> None:
    import time

    x = np.ones(n_mib * MIB, dtype=np.uint8)
    time.sleep(0.8)  # resident while the parent's sampler looks
    del x


@linux
def test_a_later_stage_does_not_inherit_an_earlier_peak() -> None:
    with StageMemory() as base:
        pass
    with StageMemory() as big:
        _touch(300)
    with StageMemory() as small:
        _touch(10)
    assert big.per_stage and small.per_stage
    # the oracle is the allocation: 300 MiB on top of what the process holds
    assert big.peak_mib >= base.peak_mib + 280
    assert small.peak_mib < big.peak_mib - 250
    assert small.peak_mib < base.peak_mib + 60


@linux
def test_child_processes_count() -> None:
    with StageMemory(interval=0.05) as own:
        pass
    with StageMemory(interval=0.05) as mem:
        p = mp.get_context("spawn").Process(target=_child_holds, args=(250,))
        p.start()
        p.join()
    assert p.exitcode == 0
    assert own.child_mib == 0.0
    assert 250 <= mem.child_mib < 250 + 200  # the child's 250 MiB (plus its interpreter)
    assert mem.peak_mib >= mem.child_mib
