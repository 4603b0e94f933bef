"""Per-stage peak memory: the peak of the stage itself, not of the process so far."""

from __future__ import annotations

import multiprocessing as mp
import sys

import numpy as np
import pytest

from gmmspeech.features.extraction_worker import keep_freed_memory
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


def _heap_blocks(n_mib: int) -> list[np.ndarray]:
    # 1 MiB blocks come from malloc's heap (below the mmap threshold), so that what is freed
    # is kept by malloc for reuse (keep_freed_memory) rather than unmapped
    blocks = [np.ones(MIB, dtype=np.uint8) for _ in range(n_mib)]
    return blocks


@linux
def test_used_is_what_the_block_allocates_not_what_the_process_keeps() -> None:
    keep_freed_memory()
    with StageMemory() as first:
        held = _heap_blocks(200)
        del held  # freed, but kept by malloc: the process's RSS stays up
    with StageMemory() as nothing:
        pass
    with StageMemory() as hundred:
        held = _heap_blocks(100)  # would fit in the kept memory without a release
        del held
    assert first.used_mib is not None and nothing.used_mib is not None
    assert hundred.used_mib is not None
    # the oracle is the allocation: 200 MiB, nothing, 100 MiB (numpy's own small overheads
    # and the sampler thread's stack aside)
    assert 190 <= first.used_mib <= 230
    assert nothing.used_mib < 8
    assert 95 <= hundred.used_mib <= 125


@linux
def test_used_counts_a_child_s_growth() -> None:
    with StageMemory(interval=0.05) as mem:
        p = mp.get_context("spawn").Process(target=_child_holds, args=(250,))
        p.start()
        p.join()
    assert mem.used_mib is not None
    assert 250 <= mem.used_mib < 250 + 200  # the child's 250 MiB (plus its interpreter)
