"""Run an experiment's stages in order, skipping those whose outputs are up to date.

A stage is skipped when its record ``stages/NN_name.json`` holds the current hash (its
declared config chained with the stages before it), its outputs exist and its outside
inputs keep their fingerprints; a stage that runs invalidates the records after it. The
tables are in :mod:`.tables`, the folder's ownership rules in :mod:`.folder`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config.build import did_you_mean
from ..config.sections import ExperimentConfig, config_hash
from ..config.yamlfile import dump_yaml
from ..engine import blas_thread_budget, blas_threads
from ..errors import ConfigError, DataError
from ..storage.atomic import protected
from .artefacts import RECORDS, RESULTS
from .declarations import Stage
from .feasibility import check_experiment
from .folder import open_folder, remove_if_unused
from .inputs import INPUTS, changes
from .report import StageMemory, write_json, write_text
from .tables import REGISTRY
from .workspace import MANIFEST, RESOLVED_CONFIG, Workspace

log = logging.getLogger(__name__)

#: Stage names of the GMM-UBM system in order; ``--stage N`` counts from 1.
STAGES: tuple[str, ...] = tuple(st.name for st in REGISTRY["verification"])


def stages_of(task: str, system: str = "gmm-ubm") -> tuple[Stage, ...]:
    """The stage table of ``task`` with ``system``; a :class:`ConfigError` names the known
    tables."""
    key = task if system == "gmm-ubm" else f"{task}:{system}"
    try:
        return REGISTRY[key]
    except KeyError:
        raise ConfigError(
            f"task: no stages for {key!r}; expected one of {', '.join(REGISTRY)}"
        ) from None


def stage_number(name: str, stages: Sequence[str] = STAGES) -> int:
    """1-based number of the stage called ``name`` in ``stages`` (default: GMM-UBM's).

    Raises
    ------
    ConfigError
        ``name`` is no stage; the message lists the stages (and the closest match).
    """
    stages = tuple(stages)
    if name in stages:
        return stages.index(name) + 1
    hint = did_you_mean(name, stages, otherwise="")
    hint = f"; {hint}" if hint else ""
    raise ConfigError(
        f"stage: unknown stage {name!r}; the stages are "
        f"{', '.join(f'{i} {s}' for i, s in enumerate(stages, 1))}{hint}"
    )


@dataclasses.dataclass
class StageOutcome:
    """What happened to one stage in a run.

    Attributes
    ----------
    index : int
        1-based stage number.
    name : str
    status : {"ran", "skipped", "not selected"}
    seconds : float or None
        Wall time of the stage when it (last) ran.
    reason : str
        Why a stage ran: ``"forced"``, ``"not run before"``, ``"config changed"``,
        ``"outputs missing (...)"`` or ``"inputs changed: ..."``; "" when skipped.
    """

    index: int
    name: str
    status: str
    seconds: float | None = None
    reason: str = ""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _chain_hashes(config: ExperimentConfig, table: Sequence[Stage]) -> dict[str, str]:
    """Stage name -> hash of its sections chained with the hash of the stage before it."""
    hashes: dict[str, str] = {}
    prev = ""
    for st in table:
        prev = config_hash(
            {
                "stage": st.name,
                "v": st.version,
                "config": st.hash_input(config),
                "upstream": prev,
            }
        )
        hashes[st.name] = prev
    return hashes


class Experiment(Workspace):
    """One experiment folder driven by an :class:`~gmmspeech.config.sections.ExperimentConfig`.

    Parameters
    ----------
    config : ExperimentConfig
    out_dir : path-like, optional
        The experiment folder (default ``config.out_dir`` or ``exp/<name>``).
    config_path : str, optional
        The YAML file the config came from (named in error messages).
    progress : bool
        Show progress bars.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        out_dir: str | Path | None = None,
        *,
        config_path: str | None = None,
        progress: bool = False,
    ) -> None:
        table = stages_of(config.task, config.system)
        self._blas: int | None = None
        super().__init__(
            config,
            out_dir,
            stage_names=[st.name for st in table],
            hashes=_chain_hashes(config, table),
            config_path=config_path,
            progress=progress,
        )
        self._inputs: dict[str, dict[str, str]] = {}
        self._checked = False

    @property
    def stages(self) -> tuple[Stage, ...]:
        """This experiment's task's stage table (looked up in :data:`REGISTRY`)."""
        return stages_of(self.cfg.task, self.cfg.system)

    def stage_number(self, name: str) -> int:
        """1-based number of the stage ``name`` in this experiment's table."""
        return stage_number(name, self.stage_names)

    def is_done(self, index: int) -> bool:
        """Whether stage ``index`` has a record with the current hash, all its outputs, and
        the current fingerprints of its inputs."""
        return not self.why_stale(index)

    def why_stale(self, index: int) -> str:
        """Why stage ``index`` must run ("" if it is up to date)."""
        rec = self.record(index)
        if rec is None:
            return "not run before"
        name = self.stage_names[index - 1]
        if rec.get("hash") != self.hashes[name]:
            return "config changed"
        missing = [rel for rel in rec.get("outputs", []) if not (self.out / rel).exists()]
        if missing:
            return f"outputs missing ({', '.join(missing[:3])})"
        diff = changes(rec.get("inputs", {}), self.inputs_of(name))
        return f"inputs changed: {'; '.join(diff)}" if diff else ""

    def inputs_of(self, name: str) -> dict[str, str]:
        """Fingerprints of the files stage ``name`` reads from outside the experiment.

        Taken once per :meth:`run` (a stat per audio file), when first asked: for a stage,
        that is before it runs and after the stages before it have run.
        """
        if name not in self._inputs:
            fn = INPUTS.get(name)
            self._inputs[name] = fn(self) if fn is not None else {}
        return self._inputs[name]

    def run(
        self,
        stage: int | str = 1,
        stop_stage: int | str | None = None,
        *,
        force: bool = False,
        on_stage: Callable[[StageOutcome], None] | None = None,
    ) -> list[StageOutcome]:
        """Run stages ``stage`` .. ``stop_stage`` (1-based numbers or names, inclusive).

        Parameters
        ----------
        stage, stop_stage : int or str
            First and last stage to consider (default: all).
        force : bool
            Rerun the selected stages even when their outputs are up to date.
        on_stage : callable, optional
            Called with each :class:`StageOutcome` as it completes.

        Returns
        -------
        list of StageOutcome
            One per stage (``not selected`` outside the range).

        Raises
        ------
        ConfigError
            Invalid stage range or unknown stage name.
        DataError
            From the stages; also when a selected stage needs the output of an earlier
            stage that has not run (the message says which).
        """
        n = len(self.stages)
        first = self.stage_number(stage) if isinstance(stage, str) else stage
        last = n if stop_stage is None else stop_stage
        last = self.stage_number(last) if isinstance(last, str) else last
        if not 1 <= first <= last <= n:
            raise ConfigError(
                f"--stage {first} --stop-stage {last}: need 1 <= stage <= stop-stage <= {n}"
            )
        fresh = not self.out.exists()
        theirs = [self.out / rel for rel in self.open_folder(force)]
        mine = "it was in the folder before it became a gmmspeech experiment"
        outcomes = []
        # decided once, before this run's own work raises the load average
        self._blas = blas_thread_budget()
        log.debug("BLAS threads per run: %s", self._blas or "as set by the environment")
        redone = ""
        self._inputs = {}
        self._checked = False
        try:
            with protected(theirs, mine), protected([self.where], "the experiment's config"):
                for i, st in enumerate(self.stages, 1):
                    if i < first or i > last:
                        outcomes.append(StageOutcome(i, st.name, "not selected"))
                        continue
                    outcome = self._run_one(i, st, force, redone)
                    redone = st.name if outcome.status == "ran" else redone
                    outcomes.append(outcome)
                    if on_stage is not None:
                        on_stage(outcome)
        except BaseException:
            if fresh:
                remove_if_unused(self.out)
            raise
        return outcomes

    def check_feasible(self) -> dict[str, Any]:
        """Check the config against the prepared data (:mod:`.feasibility`), once per run:
        before the first stage after the first that runs. Nothing is checked while the
        first stage (prepare) is not up to date.

        Raises
        ------
        ConfigError
            An option the prepared data cannot carry (one line: option, limit, fix).
        """
        self._checked = True
        if not self.is_done(1):
            return {}
        return check_experiment(self)

    def open_folder(self, force: bool = False) -> list[str]:
        """Make sure the folder is a gmmspeech experiment; return the files it must not
        touch (:func:`.folder.open_folder`)."""
        return open_folder(self.out, self.where, force)

    def _run_one(self, i: int, st: Stage, force: bool, redone: str = "") -> StageOutcome:
        if i > 1 and not self.is_done(i - 1):
            raise DataError(
                f"{self.out}: stage {i} ({st.name}) needs stage {i - 1} "
                f"({self.stage_names[i - 2]}) to be up to date for this config; run with "
                f"--stage {i - 1} (or from the start)"
            )
        reason = "forced" if force else self.why_stale(i)
        if reason == "not run before" and redone:
            reason = f"{redone} was redone"
        if not reason:
            rec = self.record(i) or {}
            log.debug("stage %d %s: up to date (skipped)", i, st.name)
            return StageOutcome(i, st.name, "skipped", rec.get("seconds"))
        if i > 1 and not self._checked:
            self.check_feasible()
        log.info("stage %d %s: running (%s)", i, st.name, reason)
        # taken before the stage reads them: a file changed during the run is redone next time
        inputs = self.inputs_of(st.name)
        t0 = time.perf_counter()
        self.force = force
        try:
            # the BLAS policy belongs in the engine's one place for thread limits; here it
            # covers the stages' in-process work until it moves there
            with StageMemory() as mem, blas_threads(self._blas):
                outputs, info = st.run(self.view(st))
        finally:
            self.force = False
        seconds = time.perf_counter() - t0
        self._invalidate_after(i)
        self._write_record(i, outputs, info, seconds, inputs, mem)
        log.debug("stage %d %s: done in %.1f s", i, st.name, seconds)
        return StageOutcome(i, st.name, "ran", seconds, reason)

    def view(self, st: Stage) -> Workspace:
        """The workspace of stage ``st``: only the config keys and artefacts it declares."""
        ws = Workspace(
            self._config,
            self.out,
            stage_names=self._stage_names,
            hashes=self.hashes,
            config_path=self.where,
            progress=self.progress,
            stage=st,
        )
        ws.force = self.force
        return ws

    def _invalidate_after(self, index: int) -> None:
        # every later record, also those of another stage table (an older version's
        # 07_evaluate.json is no record of this version's stage 7)
        for p in (self.out / RECORDS.template).glob("[0-9][0-9]_*.json"):
            if int(p.name[:2]) > index:
                p.unlink()

    def _write_record(
        self,
        index: int,
        outputs: Sequence[str],
        info: dict[str, Any],
        seconds: float,
        inputs: dict[str, str],
        mem: StageMemory,
    ) -> None:
        (self.out / RECORDS.template).mkdir(parents=True, exist_ok=True)
        name = self.stage_names[index - 1]
        # a record of the same number from another table (classification's old stage 6
        # normalize before its stage 6 evaluate) is no record of this stage
        for p in (self.out / RECORDS.template).glob(f"{index:02d}_*.json"):
            if p != self.record_path(index):
                p.unlink()
        write_text(self.out / RESOLVED_CONFIG, dump_yaml(self.cfg))
        write_json(
            self.record_path(index),
            {
                "stage": index,
                "name": name,
                "hash": self.hashes[name],
                "config_hash": self.config_hash,
                "outputs": list(outputs),
                "inputs": inputs,
                "seconds": round(seconds, 3),
                "peak_rss_mib": round(mem.peak_mib, 1),
                "used_mib": None if mem.used_mib is None else round(mem.used_mib, 1),
                "finished": _now(),
                "info": info,
            },
        )

    def results(self) -> dict[str, Any]:
        """The contents of ``results.json``."""
        p = self.path(RESULTS)
        if not p.is_file():
            raise DataError(f"{p}: no results yet; run the evaluate stage")
        data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
        return data


__all__ = [
    "MANIFEST",
    "RESOLVED_CONFIG",
    "REGISTRY",
    "STAGES",
    "Experiment",
    "Stage",
    "StageOutcome",
    "stage_number",
    "stages_of",
]
