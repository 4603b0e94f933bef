"""Experiment reports: resource measurements, the confusion-matrix plot and ``report.md``.

Used by the pipeline stages; every file is written atomically.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..decisions.plots import load_pyplot, plot_det
from ..features.extraction_worker import release_freed_memory
from ..storage.atomic import atomic_path
from ..storage.provenance import check_finite_json


def peak_rss_mib() -> float:
    """Peak resident set size in MiB of this process or its largest finished child.

    ``getrusage`` reports the peak over the process's whole life, so within one run a value
    measured after a stage is the peak of that stage *and* the stages before it.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1.0 / 1024 if platform.system() != "Darwin" else 1.0 / (1024 * 1024)
    return float(max(own, kids)) * scale


def _status_kib(pid: str, field: str) -> int:
    """``field`` (e.g. ``VmRSS``) of ``/proc/<pid>/status`` in KiB; 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: str) -> list[str]:
    """Child process ids of ``pid`` (all its threads), recursively."""
    out: list[str] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                kids = f.read().split()
        except OSError:
            continue
        for kid in kids:
            out += [kid, *_children(kid)]
    return out


class StageMemory:
    """Memory of one block of work (a stage): its peak, and what the block itself used.

    On Linux, when the block starts, the memory malloc keeps for reuse is given back
    (:func:`~gmmspeech.features.extraction_worker.release_freed_memory`), the RSS is read, and the
    kernel's high-water mark is reset (``/proc/self/clear_refs``); a thread samples the RSS of
    the child processes (extraction pools, engine workers) every ``interval`` seconds. The
    memory the block used is its own peak minus the RSS at its start, plus the largest sum
    over the children of their growth since the start (a child started by the block grows
    from 0). Elsewhere it falls back to :func:`peak_rss_mib` (the peak of the process's life
    so far) and ``used_mib`` is None.

    Attributes
    ----------
    peak_mib : float
        Peak RSS during the block: the larger of this process's and its largest child's.
    used_mib : float or None
        The memory the block itself used (above); None without ``/proc``.
    start_mib : float
        This process's RSS when the block started.
    child_mib : float
        The largest child process's sampled peak (0 without children).
    per_stage : bool
        Whether ``peak_mib`` is the block's own peak (False: cumulative fallback).
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_mib = 0.0
        self.used_mib: float | None = None
        self.start_mib = 0.0
        self.child_mib = 0.0
        self.per_stage = False
        self._child_kib = 0
        self._child_growth_kib = 0
        self._child_start: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _children_rss(self) -> dict[str, int]:
        return {kid: _status_kib(kid, "VmRSS") for kid in _children(str(os.getpid()))}

    def _look(self) -> None:
        rss = self._children_rss()
        if rss:
            self._child_kib = max(self._child_kib, *rss.values())
        growth = sum(max(0, v - self._child_start.get(k, 0)) for k, v in rss.items())
        self._child_growth_kib = max(self._child_growth_kib, growth)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._look()

    def __enter__(self) -> StageMemory:
        release_freed_memory()
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # 5: reset the peak RSS (VmHWM) to the current RSS
            self.per_stage = _status_kib("self", "VmHWM") > 0
        except OSError:
            self.per_stage = False
        if self.per_stage:
            self.start_mib = _status_kib("self", "VmRSS") / 1024
            self._child_start = self._children_rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.per_stage:
            self.peak_mib = peak_rss_mib()
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.child_mib = self._child_kib / 1024
        own_peak = _status_kib("self", "VmHWM") / 1024
        self.peak_mib = max(own_peak, self.child_mib)
        self.used_mib = max(0.0, own_peak - self.start_mib) + self._child_growth_kib / 1024


def machine_description() -> str:
    """One line: CPU count, memory, OS and Python (for the report's record of where it ran)."""
    mem = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        pass
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON (indented, sorted keys) atomically; a NaN or inf is refused, naming its key."""
    check_finite_json(data, str(path))
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def plot_confusion(
    matrix: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "Confusion matrix",
) -> None:
    """Save a confusion-matrix image (rows: true class, columns: predicted class).

    Parameters
    ----------
    matrix : ndarray, shape (n_classes, n_classes)
        Counts.
    labels : sequence of str, length n_classes
    path : path-like
        PNG file, written atomically.
    """
    plt = load_pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    size = min(4 + 0.22 * n, 16)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize="x-small" if n > 20 else "small")
    ax.set_yticks(range(n), labels, fontsize="x-small" if n > 20 else "small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    with atomic_path(path, suffix=Path(path).suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_det_file(
    systems: Mapping[str, tuple[Any, Any]], path: str | os.PathLike[str], title: str
) -> None:
    """A DET plot of several systems, saved atomically (see :func:`gmmspeech.plot_det`)."""
    fig = plot_det(systems, None, title=title)
    with atomic_path(path, suffix=Path(path).suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    load_pyplot().close(fig)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _row(label: str, ranked: Mapping[str, Any], llrs: Mapping[str, Any]) -> list[str]:
    """EER and minDCF of ``ranked``, actDCF and Cllr of the LLRs ``llrs``."""
    return [
        label,
        f"{100 * ranked['eer']:.2f}",
        f"{ranked['min_dcf']:.4f}",
        f"{llrs['act_dcf']:.4f}",
        f"{llrs['cllr']:.4f}",
        f"{ranked['min_cllr']:.4f}",
    ]


def _fusion_lines(results: Mapping[str, Any]) -> list[str]:
    """The results of a fusion experiment: every system, the fusion, the candidate kept."""
    fu = results["fusion"]
    rows = [_row(n, m["scores"], m["calibrated"]) for n, m in results["systems"].items()]
    rows.append(_row(f"fusion {'+'.join(fu['systems'])}", results["fused"], results["fused"]))
    rows.append(_row(f"kept: {fu['chosen']}", results["calibrated"], results["calibrated"]))
    head = ["system", "EER %", "minDCF", "actDCF", "Cllr", "minCllr"]
    lines = [_table(head, rows), ""]
    cands = fu["candidates"]
    fits = "; ".join(
        f"{k}: weights [{', '.join(f'{w:.4g}' for w in c['weights'])}], offset {c['offset']:.4g}"
        + (
            f", cross-validated Cllr {c['cv_cllr']:.4f} (se {c['cv_cllr_se']:.4f})"
            if "cv_cllr" in c
            else ""
        )
        for k, c in cands.items()
    )
    guard = (
        f"The guard kept {fu['chosen']}: the simplest candidate whose Cllr at "
        f"P_tar={fu['prior']:g}, cross-validated on the calibration trials "
        f"({fu['cv_folds']} folds by model), is within one standard error of the lowest."
        if fu["guard"]
        else "Without the guard: every system fused."
    )
    lines.append(
        f"{results['n_trials']} trials ({results['n_target']} target), {results['n_models']} "
        f"models. Each system's EER, minDCF and minCllr are of its scores, its actDCF and Cllr "
        f"of those scores calibrated alone on the calibration trials. Every fit is a "
        f"logistic regression at P_tar={fu['prior']:g} on {fu['trials']} calibration trials "
        f"({fu['target_trials']} target): {fits}. {guard} minDCF at "
        f"P_tar={results['p_target']:g}, C_miss={results['c_miss']:g}, C_fa={results['c_fa']:g}."
    )
    return lines


def _results_lines(task: str, results: Mapping[str, Any]) -> list[str]:
    """The results section: metrics table (verification) or accuracies (classification)."""
    if "fusion" in results:
        return _fusion_lines(results)
    lines: list[str] = []
    if task == "verification":
        rows = []
        for system in ("calibrated", "normalized", "raw"):
            m = results.get(system)
            if not m:
                continue
            rows.append(
                [
                    system,
                    f"{100 * m['eer']:.2f}",
                    f"{m['min_dcf']:.4f}",
                    f"{m['act_dcf']:.4f}",
                    f"{m['cllr']:.4f}",
                    f"{m['min_cllr']:.4f}",
                ]
            )
        lines.append(_table(["scores", "EER %", "minDCF", "actDCF", "Cllr", "minCllr"], rows))
        lines.append("")
        lines.append(
            f"{results['n_trials']} trials ({results['n_target']} target, "
            f"{results['n_nontarget']} non-target), {results['n_models']} models, "
            f"{results['n_test_utts']} test utterances. EER from the ROC convex hull; minDCF at "
            f"P_tar={results['p_target']:g}, C_miss={results['c_miss']:g}, "
            f"C_fa={results['c_fa']:g}, normalised by min(C_miss P_tar, C_fa (1-P_tar)). "
            f"Score normalisation: {results['norm']}. actDCF and Cllr treat the scores as "
            f"natural-log LLRs: only the calibrated ones are meant to be."
        )
        cal = results.get("calibration")
        if cal:
            lines.append("")
            lines.append(
                f"Calibration: llr = {cal['slope']:.4g} * score + {cal['offset']:.4g}, "
                f"logistic regression at P_tar={results['p_target']:g} on {cal['trials']} "
                f"trials ({cal['target_trials']} target) of {cal['models']} background "
                f"models ({cal['utterances_per_model']} utterance(s) each)."
            )
    else:
        lines.append(
            f"Accuracy {100 * results['accuracy']:.2f}% (balanced accuracy, the mean of the "
            f"per-class recalls: {100 * results['balanced_accuracy']:.2f}%) over "
            f"{results['n_test']} test files "
            f"({results['n_classes']} classes, {results['n_folds']}-fold cross-validation); "
            f"mean of the fold accuracies {100 * results['mean_fold_accuracy']:.2f}% "
            f"(folds: {', '.join(f'{100 * a:.1f}' for a in results['fold_accuracy'])})."
        )
        lines.append("")
        per = results["per_class_recall"]
        worst = sorted(per.items(), key=lambda kv: (kv[1], kv[0]))[:10]
        lines.append(
            _table(["class (10 hardest)", "recall %"], [[k, f"{100 * v:.1f}"] for k, v in worst])
        )
    return lines


def render_report(
    *,
    name: str,
    task: str,
    config_yaml: str,
    config_hash: str,
    counts: Mapping[str, Any],
    stages: Sequence[Mapping[str, Any]],
    results: Mapping[str, Any],
    figure: str | None,
    chosen: Mapping[str, str] | None = None,
) -> str:
    """The text of ``report.md``: the numbers, data counts, stage timings and the config
    (and ``chosen``: config key -> what its ``auto`` became and why)."""
    lines = [f"# {name}", ""]
    lines.append(f"Task: {task}. Config hash `{config_hash}`. Machine: {machine_description()}.")
    lines.append("")
    lines.append("## Results")
    lines.append("")
    lines += _results_lines(task, results)
    if figure:
        lines += ["", f"![{figure}]({figure})"]
    lines += ["", "## Data", ""]
    lines.append(_table(["what", "count"], [[k, v] for k, v in counts.items()]))
    lines += ["", "## Stages", ""]
    lines.append(
        "Wall time of each stage when it last ran. Peak RSS: the larger of this process's "
        "peak during the stage (high-water mark reset when the stage starts) and its "
        "largest child process's (sampled every 0.1 s). Used: what the stage itself "
        "allocated: its peak minus the RSS at its start (memory kept by malloc for reuse "
        "is given back first), plus the children's growth during the stage."
    )
    lines.append("")
    rows = []
    for st in stages:
        rows.append(
            [
                st["index"],
                st["name"],
                f"{st['seconds']:.1f}" if st.get("seconds") is not None else "-",
                f"{st['peak_rss_mib']:.0f}" if st.get("peak_rss_mib") is not None else "-",
                f"{st['used_mib']:.0f}" if st.get("used_mib") is not None else "-",
                st.get("finished", "-"),
            ]
        )
    header = ["#", "stage", "seconds", "peak RSS MiB", "used MiB", "finished"]
    lines.append(_table(header, rows))
    if chosen:
        lines += ["", "## Chosen by auto", ""]
        lines += [f"- `{key}`: {why}" for key, why in chosen.items()]
    lines += ["", "## Config", "", "```yaml", config_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


__all__ = [
    "machine_description",
    "StageMemory",
    "peak_rss_mib",
    "plot_confusion",
    "plot_det_file",
    "render_report",
    "write_json",
    "write_text",
]
