"""Experiments from one config: stages that are skipped when their outputs are up to date.

An :class:`Experiment` runs the stages of :data:`STAGES` in order, in one folder::

    1 prepare    data dirs (background / enroll / test + trials, or all + folds)
    2 extract    HDF5 feature stores (resumable)
    3 ubm        the UBM (one per fold for classification), checkpointed per split stage
    4 enroll     MAP speaker models (class models per fold)
    5 score      raw LLR scores (class scores and predictions per fold)
    6 normalize  cohort score normalisation (verification; nothing for classification)
    7 evaluate   results.json and the DET plot (confusion matrix)
    8 report     report.md

Each stage writes every output atomically and then a record ``stages/NN_name.json`` holding
the stage's hash, its outputs, wall time and peak memory. The hash chains the config
sections the stage reads with the hash of the stage before it, so changing e.g.
``scoring.norm`` reruns normalise, evaluate and report only. A stage is skipped when its
record has the current hash and all its outputs exist; a run killed anywhere therefore
resumes at the stage it was in (feature extraction and UBM training also resume inside the
stage). A stage that runs invalidates the records of the stages after it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .config import ExperimentConfig, SetConfig, config_hash, dump_yaml, to_dict
from .datadir import DataDir, Trial, make_trials, scan_audio, split_speakers
from .errors import ConfigError, DataError
from .report import (
    peak_rss_mib,
    plot_confusion,
    plot_det_file,
    render_report,
    write_json,
    write_text,
)

log = logging.getLogger(__name__)

#: Stage names in order; ``--stage N`` counts from 1.
STAGES: tuple[str, ...] = (
    "prepare",
    "extract",
    "ubm",
    "enroll",
    "score",
    "normalize",
    "evaluate",
    "report",
)
_RECORD_VERSION = 1


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
    """

    index: int
    name: str
    status: str
    seconds: float | None = None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _stage_sections(cfg: ExperimentConfig) -> dict[str, Any]:
    """The part of the config each stage reads (its own hash input)."""
    s = cfg.scoring
    return {
        "prepare": {"task": cfg.task, "data": to_dict(cfg.data)},
        "extract": to_dict(cfg.features),
        "ubm": to_dict(cfg.ubm),
        "enroll": to_dict(cfg.enroll),
        "score": {"method": s.method, "top_c": s.top_c},
        "normalize": {"norm": s.norm, "cohort_size": s.cohort_size, "top_n": s.top_n},
        "evaluate": {"p_target": s.p_target, "c_miss": s.c_miss, "c_fa": s.c_fa},
        "report": {"name": cfg.name},
    }


class Experiment:
    """One experiment folder driven by an :class:`~gmmspeech.config.ExperimentConfig`.

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
        self.cfg = config
        self.out = Path(out_dir or config.out_dir or Path("exp") / config.name)
        self.where = config_path or "config"
        self.progress = progress
        self.hashes: dict[str, str] = {}
        prev = ""
        for name, section in _stage_sections(config).items():
            prev = config_hash(
                {"stage": name, "v": _RECORD_VERSION, "config": section, "upstream": prev}
            )
            self.hashes[name] = prev
        self.config_hash = config_hash(to_dict(config))
        self.counts: dict[str, Any] = {}

    # ------------------------------------------------------------------ records
    def path(self, rel: str) -> Path:
        """A path inside the experiment folder."""
        return self.out / rel

    def _record_path(self, index: int) -> Path:
        return self.out / "stages" / f"{index:02d}_{STAGES[index - 1]}.json"

    def record(self, index: int) -> dict[str, Any] | None:
        """The stage record of stage ``index`` (1-based), or None."""
        import json

        p = self._record_path(index)
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("%s: unreadable stage record; the stage will run again", p)
            return None
        return data if isinstance(data, dict) else None

    def is_done(self, index: int) -> bool:
        """Whether stage ``index`` has a record with the current hash and all its outputs."""
        rec = self.record(index)
        if rec is None or rec.get("hash") != self.hashes[STAGES[index - 1]]:
            return False
        return all((self.out / rel).exists() for rel in rec.get("outputs", []))

    def _invalidate_after(self, index: int) -> None:
        for j in range(index + 1, len(STAGES) + 1):
            p = self._record_path(j)
            if p.exists():
                p.unlink()

    # ---------------------------------------------------------------------- run
    def run(
        self,
        stage: int = 1,
        stop_stage: int = len(STAGES),
        *,
        force: bool = False,
        on_stage: Callable[[StageOutcome], None] | None = None,
    ) -> list[StageOutcome]:
        """Run stages ``stage`` .. ``stop_stage`` (1-based, inclusive).

        Parameters
        ----------
        stage, stop_stage : int
            First and last stage to consider.
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
            Invalid stage range.
        DataError
            From the stages; also when a selected stage needs the output of an earlier
            stage that has not run (the message says which).
        """
        n = len(STAGES)
        if not 1 <= stage <= stop_stage <= n:
            raise ConfigError(
                f"--stage {stage} --stop-stage {stop_stage}: need 1 <= stage <= stop-stage <= {n}"
            )
        outcomes = []
        for i, name in enumerate(STAGES, 1):
            if i < stage or i > stop_stage:
                outcomes.append(StageOutcome(i, name, "not selected"))
                continue
            if i > 1 and not self.is_done(i - 1):
                raise DataError(
                    f"{self.out}: stage {i} ({name}) needs stage {i - 1} ({STAGES[i - 2]}) to "
                    f"be up to date for this config; run with --stage {i - 1} (or from the "
                    f"start)"
                )
            if not force and self.is_done(i):
                rec = self.record(i) or {}
                log.debug("stage %d %s: up to date (skipped)", i, name)
                outcome = StageOutcome(i, name, "skipped", rec.get("seconds"))
            else:
                log.debug("stage %d %s: running", i, name)
                t0 = time.perf_counter()
                outputs, info = getattr(self, f"_stage_{name}")()
                seconds = time.perf_counter() - t0
                self._invalidate_after(i)
                self._write_record(i, outputs, info, seconds)
                outcome = StageOutcome(i, name, "ran", seconds)
                log.debug("stage %d %s: done in %.1f s", i, name, seconds)
            outcomes.append(outcome)
            if on_stage is not None:
                on_stage(outcome)
        return outcomes

    def _write_record(
        self, index: int, outputs: Sequence[str], info: dict[str, Any], seconds: float
    ) -> None:
        (self.out / "stages").mkdir(parents=True, exist_ok=True)
        name = STAGES[index - 1]
        write_text(self.out / "config.yaml", dump_yaml(self.cfg))
        write_json(
            self._record_path(index),
            {
                "stage": index,
                "name": name,
                "hash": self.hashes[name],
                "config_hash": self.config_hash,
                "outputs": list(outputs),
                "seconds": round(seconds, 3),
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "finished": _now(),
                "info": info,
            },
        )

    # --------------------------------------------------------------- helpers
    @property
    def folds(self) -> list[int]:
        """Fold numbers (classification)."""
        return list(range(self.cfg.data.n_folds))

    def _root(self) -> Path:
        root = Path(self.cfg.data.root)
        if not root.is_dir():
            raise DataError(
                f"{self.where}: data.root: folder {str(root)!r} does not exist; point it at the "
                f"corpus, e.g. --set data.root=/path/to/corpus"
            )
        return root

    def _scan(self, key: str, s: SetConfig) -> DataDir:
        root = self._root()
        folder = Path(s.path) if Path(s.path).is_absolute() else root / s.path
        if not folder.is_dir():
            raise DataError(
                f"{self.where}: data.{key}.path: folder {str(folder)!r} does not exist (under "
                f"data.root {str(root)!r}); fix the path or data.root"
            )
        try:
            data = scan_audio(
                folder,
                s.pattern,
                utt_id=s.utt_id,
                spk_field=s.spk_field,
                label_field=s.label_field,
            )
        except (DataError, ConfigError) as exc:
            raise type(exc)(f"{self.where}: data.{key}: {exc}") from None
        if s.include:
            keep: set[str] = set()
            for item in s.include:
                keep |= _read_list(root / item, f"{self.where}: data.{key}.include")
            root_r = root.resolve()
            chosen = []
            for utt in data.utt_ids:
                p = Path(data.wav_scp[utt])
                with contextlib.suppress(ValueError):
                    if p.relative_to(root_r).as_posix() in keep:
                        chosen.append(utt)
            if not chosen:
                raise DataError(
                    f"{self.where}: data.{key}.include: none of the {len(data)} files found is "
                    f"listed in {', '.join(s.include)} (paths are relative to data.root)"
                )
            data = data.subset(chosen)
        if s.max_speakers is not None or s.max_per_speaker is not None:
            spk2utt = data.spk2utt
            spks = sorted(spk2utt)[: s.max_speakers]
            chosen = [u for spk in spks for u in spk2utt[spk][: s.max_per_speaker]]
            data = data.subset(chosen)
        return data

    # ---------------------------------------------------------------- stages
    def _stage_prepare(self) -> tuple[list[str], dict[str, Any]]:
        if self.cfg.task == "verification":
            return self._prepare_verification()
        return self._prepare_classification()

    def _prepare_verification(self) -> tuple[list[str], dict[str, Any]]:
        d = self.cfg.data
        assert d.background is not None and d.targets is not None
        bg = self._scan("background", d.background)
        tg = self._scan("targets", d.targets)
        both = sorted(set(bg.utt2spk.values()) & set(tg.utt2spk.values()))
        if both:
            raise DataError(
                f"{self.where}: data.background and data.targets share {len(both)} speaker(s) "
                f"(e.g. {both[:3]}); background speakers must not be enrolled or tested"
            )
        labels = list(d.enroll_labels) or None
        if labels is not None:
            known = set((tg.utt2label or {}).values())
            unknown = sorted(set(labels) - known)
            if unknown:
                raise ConfigError(
                    f"{self.where}: data.enroll_labels: {unknown[:5]} are not labels of "
                    f"data.targets (labels: {sorted(known)[:8]}...)"
                )
        try:
            single, en, te = split_speakers(
                tg, background=0, enroll=d.enroll_fraction, enroll_labels=labels, seed=d.seed
            )
        except ConfigError as exc:
            raise DataError(f"{self.where}: data.targets: {exc}") from None
        if len(single):
            log.warning(
                "data.targets: %d speaker(s) with a single utterance cannot be enrolled and "
                "tested; they are left out",
                len(single.spk2utt),
            )
        if not len(en) or not len(te):
            raise DataError(
                f"{self.where}: data.targets: the split left {len(en)} enrolment and {len(te)} "
                f"test utterances; each target speaker needs utterances on both sides"
            )
        te.trials = self._trials(en, te)
        outputs = []
        for name, dd in (("background", bg), ("enroll", en), ("test", te)):
            dd.write(self.path(f"data/{name}"))
            outputs.append(f"data/{name}/wav.scp")
        outputs.append("data/test/trials")
        n_tar = sum(t.target for t in te.trials)
        info = {
            "background_speakers": len(bg.spk2utt),
            "background_utts": len(bg),
            "target_speakers": len(en.spk2utt),
            "enroll_utts": len(en),
            "test_utts": len(te),
            "trials": len(te.trials),
            "target_trials": n_tar,
            "nontarget_trials": len(te.trials) - n_tar,
        }
        return outputs, info

    def _trials(self, en: DataDir, te: DataDir) -> list[Trial]:
        if self.cfg.data.trials is None:
            return make_trials(en, te, by="spk")
        from .scoring import read_trials

        path = Path(self.cfg.data.trials)
        tl = read_trials(path)
        if tl.is_target is None:
            raise DataError(f"{path}: data.trials: the trials need target/nontarget labels")
        models = set(en.utt2spk.values())
        out = []
        for i, (m, t) in enumerate(zip(tl.model_ids, tl.test_ids, strict=True)):
            if m not in models:
                raise DataError(
                    f"{tl.where(i)}: model {m!r} is not an enrolled speaker of data.targets "
                    f"(e.g. {sorted(models)[:3]}); fix the trial list (data.trials)"
                )
            if t not in te.wav_scp:
                raise DataError(
                    f"{tl.where(i)}: test utterance {t!r} is not a test utterance of "
                    f"data.targets (e.g. {te.utt_ids[:2]}); fix the trial list (data.trials)"
                )
            out.append(Trial(m, t, bool(tl.is_target[i])))
        return out

    def _prepare_classification(self) -> tuple[list[str], dict[str, Any]]:
        d = self.cfg.data
        assert d.dataset is not None
        data = self._scan("dataset", d.dataset)
        if data.utt2label is None:
            raise DataError(
                f"{self.where}: data.dataset.pattern: {d.dataset.pattern!r} has no "
                f"{{{d.dataset.label_field}}} field; classification needs a class label"
            )
        folds = assign_folds(data, d.n_folds, d.fold_by)
        counts = np.bincount(list(folds.values()), minlength=d.n_folds)
        if (counts == 0).any():
            raise DataError(
                f"{self.where}: data.n_folds: fold(s) {np.flatnonzero(counts == 0).tolist()} "
                f"get no file ({len(data)} files, fold_by={d.fold_by}); use fewer folds"
            )
        data.write(self.path("data/all"))
        write_text(self.path("data/all/utt2fold"), "".join(f"{u} {folds[u]}\n" for u in folds))
        info = {
            "files": len(data),
            "classes": len(set(data.utt2label.values())),
            "speakers": len(data.spk2utt),
            "files_per_fold": counts.tolist(),
        }
        return ["data/all/wav.scp", "data/all/utt2label", "data/all/utt2fold"], info

    def _sets(self) -> list[str]:
        if self.cfg.task == "verification":
            return ["background", "enroll", "test"]
        return ["all"]

    def _stage_extract(self) -> tuple[list[str], dict[str, Any]]:
        from .extraction import extract_to_store

        # Stores of another data preparation or feature config are removed; stores of an
        # interrupted run of this same stage are completed (extract_to_store resumes).
        marker = self.path("features/stage.json")
        import json

        try:
            same = json.loads(marker.read_text("utf-8")).get("hash") == self.hashes["extract"]
        except (OSError, ValueError):
            same = False
        if not same and self.path("features").exists():
            log.info("%s: removing features of another config", self.path("features"))
            shutil.rmtree(self.path("features"))
        self.path("features").mkdir(parents=True, exist_ok=True)
        write_json(marker, {"hash": self.hashes["extract"]})
        outputs, info = [], {}
        from .extraction_worker import keep_freed_memory

        keep_freed_memory()  # freed memory kept for reuse: long utterances extract 30 % faster
        with self._engine() as engine:
            reports = [
                extract_to_store(
                    self.path(f"data/{name}"),
                    self.path(f"features/{name}.h5"),
                    self.cfg.features,
                    engine=engine,
                    max_failed_fraction=self.cfg.extract.max_failed_fraction,
                    batch_size=self.cfg.extract.batch_size,
                    progress=self.progress,
                )
                for name in self._sets()
            ]
        for name, rep in zip(self._sets(), reports, strict=True):
            outputs.append(f"features/{name}.h5")
            info[name] = {
                "utterances": rep.n_utterances,
                "extracted": rep.n_extracted,
                "already_there": rep.n_existing,
                "failed": rep.n_failed,
                "failures": rep.failures[:20],
                "audio_seconds": round(rep.audio_seconds, 1),
                "frames": rep.frames,
            }
            print(
                f"extract {name}: {rep.n_extracted} extracted, {rep.n_existing} already there, "
                f"{rep.n_failed} failed (of {rep.n_utterances})"
            )
        return outputs, info

    # features ---------------------------------------------------------------
    @contextlib.contextmanager
    def _store(self, name: str) -> Iterator[Any]:
        from .featstore import FeatureStore

        store = FeatureStore(self.path(f"features/{name}.h5"))
        try:
            yield store
        finally:
            store.close()

    def _datadir(self, name: str) -> DataDir:
        return DataDir.read(self.path(f"data/{name}"), check_audio=False)

    def _folds(self) -> dict[str, int]:
        out = {}
        for line in self.path("data/all/utt2fold").read_text(encoding="utf-8").splitlines():
            utt, fold = line.split()
            out[utt] = int(fold)
        return out

    @contextlib.contextmanager
    def _engine(self) -> Iterator[Any]:
        """The engine of ``compute.*`` (closed when the block ends)."""
        from .engine import make_engine

        engine = make_engine(self.cfg.compute)
        try:
            yield engine
        finally:
            engine.close()

    def _train_ubm(self, frames: Any, out: str, ckpt: str, keep: bool = False) -> dict[str, Any]:
        """Train and save a UBM; ``frames`` is a FeatureStore (or a view), streamed from disk."""
        from .ubm import train_ubm

        with self._engine() as engine:
            ubm = train_ubm(
                frames,
                config=self.cfg.ubm,
                checkpoint_dir=self.path(ckpt),
                progress=self.progress,
                feature_config=to_dict(self.cfg.features),
                engine=engine,
            )
        ubm.save(self.path(out))
        if not keep:
            shutil.rmtree(self.path(ckpt), ignore_errors=True)
        hist = ubm.history_
        return {
            "frames": int((ubm.config or {}).get("n_frames", 0)),
            "n_components": ubm.n_components,
            "iterations": len(hist),
            "final_log_likelihood": hist[-1]["log_likelihood"] if hist else None,
        }

    def _stage_ubm(self) -> tuple[list[str], dict[str, Any]]:
        self.path("ubm").mkdir(parents=True, exist_ok=True)
        if self.cfg.task == "verification":
            with self._store("background") as store:
                info = self._train_ubm(store, "ubm/ubm.h5", "ubm/checkpoints")
            return ["ubm/ubm.h5"], info
        folds = self._folds()
        outputs, info = [], {}
        with self._store("all") as store:
            for k in self.folds:
                out = f"ubm/fold{k}.h5"
                frames = store.select([u for u in store if folds.get(u, k) != k])
                log.info("fold %d: UBM on %d training files", k, len(frames))
                # checkpoints stay until every fold is done: a resumed run reloads the
                # finished folds' final checkpoints (keyed by data and config) at no cost
                info[f"fold{k}"] = self._train_ubm(frames, out, f"ubm/checkpoints{k}", keep=True)
                outputs.append(out)
        for k in self.folds:
            shutil.rmtree(self.path(f"ubm/checkpoints{k}"), ignore_errors=True)
        return outputs, info

    def _stage_enroll(self) -> tuple[list[str], dict[str, Any]]:
        from .gmm import DiagGMM
        from .speakermodels import enroll

        e = self.cfg.enroll
        self.path("models").mkdir(parents=True, exist_ok=True)
        if self.cfg.task == "verification":
            ubm = DiagGMM.load(self.path("ubm/ubm.h5"))
            en = self._datadir("enroll")
            with self._store("enroll") as store:
                spk2utt, dropped = _present(en.spk2utt, store)
                models = enroll(
                    ubm,
                    store,
                    spk2utt,
                    relevance_factor=e.relevance_factor,
                    adapt=e.adapt,
                    progress=self.progress,
                )
            models.save(self.path("models/models.h5"))
            return ["models/models.h5"], {
                "models": len(models),
                "utterances_missing_features": dropped,
            }
        data = self._datadir("all")
        assert data.utt2label is not None
        folds = self._folds()
        outputs: list[str] = []
        info: dict[str, Any] = {}
        with self._store("all") as store:
            for k in self.folds:
                ubm = DiagGMM.load(self.path(f"ubm/fold{k}.h5"))
                label2utt: dict[str, list[str]] = {}
                for u, lab in data.utt2label.items():
                    if folds[u] != k and u in store:
                        label2utt.setdefault(lab, []).append(u)
                models = enroll(
                    ubm,
                    store,
                    dict(sorted(label2utt.items())),
                    relevance_factor=e.relevance_factor,
                    adapt=e.adapt,
                )
                models.save(self.path(f"models/fold{k}.h5"))
                outputs.append(f"models/fold{k}.h5")
                info[f"fold{k}"] = {"classes": len(models)}
        return outputs, info

    def _score_kw(self) -> dict[str, Any]:
        s = self.cfg.scoring
        return {"method": s.method, "top_c": s.top_c, "progress": self.progress}

    def _stage_score(self) -> tuple[list[str], dict[str, Any]]:
        from .gmm import DiagGMM
        from .scoring import score_matrix, score_trials, write_scores
        from .speakermodels import SpeakerModels

        self.path("scores").mkdir(parents=True, exist_ok=True)
        if self.cfg.task == "verification":
            ubm = DiagGMM.load(self.path("ubm/ubm.h5"))
            models = SpeakerModels.load(self.path("models/models.h5"), ubm)
            te = self._datadir("test")
            with self._store("test") as store:
                trials = [
                    (t.model_id, t.test_id, t.target)
                    for t in te.trials or []
                    if t.test_id in store and t.model_id in models
                ]
                n_dropped = len(te.trials or []) - len(trials)
                if not trials:
                    raise DataError(f"{self.path('data/test/trials')}: no trial can be scored")
                with self._engine() as engine:
                    scores = score_trials(
                        ubm, models, store, trials, engine=engine, **self._score_kw()
                    )
            write_scores(
                self.path("scores/raw.txt"),
                [t[0] for t in trials],
                [t[1] for t in trials],
                scores,
            )
            info = {"trials_scored": len(trials), "trials_dropped": n_dropped}
            return ["scores/raw.txt"], info
        data = self._datadir("all")
        assert data.utt2label is not None
        folds = self._folds()
        lines, n = [], 0
        with self._store("all") as store:
            for k in self.folds:
                ubm = DiagGMM.load(self.path(f"ubm/fold{k}.h5"))
                models = SpeakerModels.load(self.path(f"models/fold{k}.h5"), ubm)
                test = [u for u in data.utt_ids if folds[u] == k and u in store]
                s = score_matrix(ubm, models, store, test, **self._score_kw())
                best = np.argmax(s, axis=0)
                for j, u in enumerate(test):
                    lines.append(f"{u} {data.utt2label[u]} {models.ids[best[j]]} {k}\n")
                n += len(test)
        write_text(self.path("scores/predictions.txt"), "".join(lines))
        return ["scores/predictions.txt"], {"test_files_scored": n}

    def _stage_normalize(self) -> tuple[list[str], dict[str, Any]]:
        if self.cfg.task != "verification":
            return [], {"applies": False}
        from .scoring import read_scores, write_scores

        s = self.cfg.scoring
        raw = read_scores(self.path("scores/raw.txt"))
        keys = list(raw)
        values = np.array([raw[k] for k in keys])
        if s.norm == "none":
            normed = values
            info: dict[str, Any] = {"norm": "none"}
        else:
            normed, info = self._cohort_normalize(keys, values)
        write_scores(
            self.path("scores/scores.txt"), [k[0] for k in keys], [k[1] for k in keys], normed
        )
        return ["scores/scores.txt"], info

    def _cohort_normalize(
        self, keys: list[tuple[str, str]], values: np.ndarray
    ) -> tuple[np.ndarray, dict[str, Any]]:
        from .gmm import DiagGMM
        from .norm import normalize
        from .scoring import ModelBank, score_matrix
        from .speakermodels import SpeakerModels, enroll

        s = self.cfg.scoring
        kw = self._score_kw()
        ubm = DiagGMM.load(self.path("ubm/ubm.h5"))
        models = SpeakerModels.load(self.path("models/models.h5"), ubm)
        bg = self._datadir("background")
        model_ids = sorted({k[0] for k in keys})
        test_ids = sorted({k[1] for k in keys})
        m_pos = {m: i for i, m in enumerate(model_ids)}
        t_pos = {t: i for i, t in enumerate(test_ids)}
        need_z = s.norm in ("z", "zt", "s", "as")
        need_t = s.norm in ("t", "zt", "s", "as")
        model_cohort = test_cohort = cohort_cohort = None
        with self._store("background") as cstore, self._store("test") as tstore:
            spk2utt, _ = _present(bg.spk2utt, cstore)
            spks = sorted(spk2utt)[: s.cohort_size]
            spk2utt = {k: spk2utt[k] for k in spks}
            cohort_utts = [u for k in spks for u in spk2utt[k]]
            utt_spk = np.array([k for k in spks for _ in spk2utt[k]])
            if need_z:
                bank = ModelBank(ubm, models.subset(model_ids))
                model_cohort = score_matrix(ubm, bank, cstore, cohort_utts, **kw)
            if need_t:
                e = self.cfg.enroll
                cmodels = enroll(
                    ubm, cstore, spk2utt, relevance_factor=e.relevance_factor, adapt=e.adapt
                )
                cbank = ModelBank(ubm, cmodels)
                test_cohort = score_matrix(ubm, cbank, tstore, test_ids, **kw).T
                if s.norm == "zt":
                    cc = score_matrix(ubm, cbank, cstore, cohort_utts, **kw)
                    same = np.asarray(cmodels.ids)[:, None] == utt_spk[None, :]
                    cohort_cohort = np.where(same, np.nan, cc)
        normed = normalize(
            s.norm,
            values,
            model_index=np.array([m_pos[k[0]] for k in keys]),
            test_index=np.array([t_pos[k[1]] for k in keys]),
            model_cohort=model_cohort,
            test_cohort=test_cohort,
            cohort_cohort=cohort_cohort,
            top_n=s.top_n,
        )
        info = {
            "norm": s.norm,
            "cohort_speakers": len(spks),
            "cohort_utterances": len(cohort_utts),
        }
        return normed, info

    def _stage_evaluate(self) -> tuple[list[str], dict[str, Any]]:
        if self.cfg.task == "verification":
            return self._evaluate_verification()
        return self._evaluate_classification()

    def _evaluate_verification(self) -> tuple[list[str], dict[str, Any]]:
        from .metrics import summary
        from .scoring import read_scores

        s = self.cfg.scoring
        te = self._datadir("test")
        label = {(t.model_id, t.test_id): t.target for t in te.trials or []}
        kw = {"p_target": s.p_target, "c_miss": s.c_miss, "c_fa": s.c_fa}
        systems: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, rel in (("normalized", "scores/scores.txt"), ("raw", "scores/raw.txt")):
            sc = read_scores(self.path(rel))
            keys = list(sc)
            systems[name] = (
                np.array([sc[k] for k in keys]),
                np.array([label[k] for k in keys], dtype=bool),
            )
        if s.norm == "none":
            del systems["normalized"]
        main = "normalized" if s.norm != "none" else "raw"
        scores, is_target = systems[main]
        results: dict[str, Any] = {
            "task": "verification",
            "name": self.cfg.name,
            "config_hash": self.config_hash,
            "norm": s.norm,
            "n_trials": len(scores),
            "n_target": int(is_target.sum()),
            "n_nontarget": int((~is_target).sum()),
            "n_models": len({k[0] for k in label}),
            "n_test_utts": len({k[1] for k in label}),
            "eer_method": "ROC convex hull",
            **kw,
        }
        if int(is_target.sum()) == 0 or int((~is_target).sum()) == 0:
            raise DataError(
                f"{self.path('data/test/trials')}: the scored trials need both target and "
                f"non-target trials to compute an EER"
            )
        for name, (values, t) in systems.items():
            results[name] = summary(values, t, **kw)
        m = results[main]
        results.update(
            {
                "eer": m["eer"],
                "min_dcf": m["min_dcf"],
                "act_dcf": m["act_dcf"],
                "cllr": m["cllr"],
                "min_cllr": m["min_cllr"],
            }
        )
        plot_det_file(
            {("raw" if k == "raw" else f"{s.norm}-norm"): v for k, v in systems.items()},
            self.path("det.png"),
            title=f"DET: {self.cfg.name}",
        )
        write_json(self.path("results.json"), results)
        return ["results.json", "det.png"], {"eer": m["eer"], "min_dcf": m["min_dcf"]}

    def _evaluate_classification(self) -> tuple[list[str], dict[str, Any]]:
        from .metrics import confusion_matrix

        rows = [
            line.split()
            for line in self.path("scores/predictions.txt").read_text("utf-8").splitlines()
        ]
        true = [r[1] for r in rows]
        pred = [r[2] for r in rows]
        fold = np.array([int(r[3]) for r in rows])
        correct = np.array([a == b for a, b in zip(true, pred, strict=True)])
        labels = sorted(set(true))
        per_class = {
            lab: float(np.mean([c for c, t in zip(correct, true, strict=True) if t == lab]))
            for lab in labels
        }
        fold_acc = [float(correct[fold == k].mean()) for k in self.folds if (fold == k).any()]
        cm, order = confusion_matrix(true, pred, labels=sorted(set(true) | set(pred)))
        results = {
            "task": "classification",
            "name": self.cfg.name,
            "config_hash": self.config_hash,
            "accuracy": float(correct.mean()),
            "mean_fold_accuracy": float(np.mean(fold_acc)),
            "fold_accuracy": fold_acc,
            "per_class_accuracy": per_class,
            "n_test": len(rows),
            "n_classes": len(labels),
            "n_folds": self.cfg.data.n_folds,
            "labels": order,
            "confusion_matrix": cm.tolist(),
        }
        plot_confusion(
            cm,
            [str(x) for x in order],
            self.path("confusion.png"),
            title=f"{self.cfg.name}: accuracy {100 * results['accuracy']:.1f}%",
        )
        write_json(self.path("results.json"), results)
        return ["results.json", "confusion.png"], {"accuracy": results["accuracy"]}

    def _stage_report(self) -> tuple[list[str], dict[str, Any]]:
        import json

        results = json.loads(self.path("results.json").read_text(encoding="utf-8"))
        stages = []
        for i, name in enumerate(STAGES[:-1], 1):
            rec = self.record(i) or {}
            stages.append(
                {
                    "index": i,
                    "name": name,
                    "seconds": rec.get("seconds"),
                    "peak_rss_mib": rec.get("peak_rss_mib"),
                    "finished": rec.get("finished", "-"),
                }
            )
        text = render_report(
            name=self.cfg.name,
            task=self.cfg.task,
            config_yaml=dump_yaml(self.cfg),
            config_hash=self.config_hash,
            counts=self.data_counts(),
            stages=stages,
            results=results,
            figure="det.png" if self.cfg.task == "verification" else "confusion.png",
        )
        write_text(self.path("report.md"), text)
        return ["report.md"], {}

    def data_counts(self) -> dict[str, Any]:
        """Counts of the prepared data and extraction from the stage records."""
        out: dict[str, Any] = {}
        prep = (self.record(1) or {}).get("info", {})
        out.update(prep)
        ext = (self.record(2) or {}).get("info", {})
        for name, rec in ext.items():
            out[f"{name}: utterances with features"] = rec["utterances"] - rec["failed"]
            out[f"{name}: extraction failures"] = rec["failed"]
            out[f"{name}: audio seconds (this run)"] = rec["audio_seconds"]
        return out

    def results(self) -> dict[str, Any]:
        """The contents of ``results.json``."""
        import json

        p = self.path("results.json")
        if not p.is_file():
            raise DataError(f"{p}: no results yet; run the evaluate stage")
        data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
        return data


# ------------------------------------------------------------------------- helpers
def _present(spk2utt: dict[str, list[str]], store: Any) -> tuple[dict[str, list[str]], int]:
    """Keep utterances that have features; drop speakers left with none."""
    out: dict[str, list[str]] = {}
    dropped = 0
    for spk, utts in spk2utt.items():
        have = [u for u in utts if u in store]
        dropped += len(utts) - len(have)
        if have:
            out[spk] = have
    if dropped:
        log.warning("%d utterance(s) without features (extraction failed) are left out", dropped)
    return out, dropped


def _read_list(path: Path, where: str) -> set[str]:
    """Paths listed in a text/CSV file: the first column, or the ``file`` column of a CSV."""
    if not path.is_file():
        raise DataError(f"{where}: list file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    out: set[str] = set()
    if path.suffix.lower() == ".csv":
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        col = 0
        if header is not None and "file" in header:
            col = header.index("file")
        elif header is not None and header:
            out.add(header[0].strip())
        for row in reader:
            if row:
                out.add(row[col].strip())
    else:
        for line in text.splitlines():
            if line.strip():
                out.add(line.split()[0])
    if not out:
        raise DataError(f"{where}: list file {str(path)!r} lists no file")
    return {Path(p).as_posix() for p in out}


def assign_folds(data: DataDir, n_folds: int, by: str = "rank") -> dict[str, int]:
    """Cross-validation fold of every utterance.

    Parameters
    ----------
    data : DataDir
        With ``utt2label`` for ``by="rank"``.
    n_folds : int
    by : {"rank", "spk"}
        ``rank``: the i-th file of each class (sorted ids) goes to fold ``i % n_folds``.
        ``spk``: the j-th speaker (sorted ids) and all of its files go to fold
        ``j % n_folds``.

    Returns
    -------
    dict of str to int
        Utterance id -> fold in ``[0, n_folds)``, sorted by utterance id.
    """
    out: dict[str, int] = {}
    if by == "rank":
        if data.utt2label is None:
            raise DataError("assign_folds: by='rank' needs utt2label")
        per: dict[str, int] = {}
        for utt in data.utt_ids:
            lab = data.utt2label[utt]
            out[utt] = per.get(lab, 0) % n_folds
            per[lab] = per.get(lab, 0) + 1
    elif by == "spk":
        order = {spk: j % n_folds for j, spk in enumerate(sorted(data.spk2utt))}
        out = {utt: order[data.utt2spk[utt]] for utt in data.utt_ids}
    else:
        raise ConfigError(f"fold_by: must be 'rank' or 'spk', got {by!r}")
    return out


def headline(results: dict[str, Any]) -> str:
    """One line with the main numbers of a results dict."""
    if results.get("task") == "classification":
        return (
            f"accuracy {100 * results['accuracy']:.2f}% ({results['n_test']} files, "
            f"{results['n_classes']} classes, {results['n_folds']} folds; mean fold accuracy "
            f"{100 * results['mean_fold_accuracy']:.2f}%)"
        )
    return (
        f"EER {100 * results['eer']:.2f}%, minDCF {results['min_dcf']:.4f} "
        f"(P_tar={results['p_target']:g}), Cllr {results['cllr']:.3f}; {results['n_trials']} "
        f"trials ({results['n_target']} target), {results['n_models']} models"
    )


__all__ = ["STAGES", "Experiment", "StageOutcome", "assign_folds", "headline"]
