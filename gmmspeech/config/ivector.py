"""The i-vector sections of an experiment config (``system: ivector``).

:class:`IVectorConfig` is the ``ivector:`` section (statistics and the total-variability
model), :class:`BackendConfig` the ``backend:`` section (LDA, WCCN, length normalisation and
the scorer). Both are re-exported by :mod:`gmmspeech.config.sections`, where the other sections live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import check as _check
from .base import check_choice, check_in, check_min, normalise

#: The speaker-modelling systems (``system``).
SYSTEMS = ("gmm-ubm", "ivector", "fusion")
#: Back-end scorers (``backend.scorer``).
SCORERS = ("plda", "cosine")
#: ``backend.scorer`` and ``backend.lda_dim``: chosen from the training speakers
#: (:mod:`gmmspeech.ivector.limits`).
AUTO = "auto"


@dataclass(frozen=True)
class IVectorConfig:
    """Statistics and total-variability training (:class:`gmmspeech.TotalVariability`).

    Parameters
    ----------
    rank : int
        i-vector dimension R (at most K * D).
    n_iter : int
        EM iterations of the total-variability matrix.
    top_n : int or None
        Keep each frame's top-N UBM posteriors in the statistics (None: all components).
    min_post : float or None
        Then drop posteriors below this (Kaldi's ``min_post``; each frame keeps its best
        component) and renormalise. The stats files then hold the pruned posteriors, read
        back with the feature store's frames: 0.077 of the dense size at 0.005, K=512,
        D=60 and 640 frames per utterance (:mod:`gmmspeech.ivector.posteriors`). 0.005
        kept the Arabic recipe's EER within 0.03 points; Kaldi's 0.025 lost 0.38. None:
        no pruning.
    min_divergence : bool
        Re-scale T after each M-step so that the mean posterior E[w w'] is the identity.
    batch_size : int
        Utterances per E-step batch (memory O(batch_size x R^2)).
    random_state : int
        Seed of the random initial T.
    """

    rank: int = 400
    n_iter: int = 10
    top_n: int | None = None
    min_post: float | None = None
    min_divergence: bool = True
    batch_size: int = 100
    random_state: int = 0

    def __post_init__(self) -> None:
        normalise(self)
        check_min(self, "rank", 1)
        check_min(self, "n_iter", 1)
        check_min(self, "top_n", 1, optional=True)
        check_in(self, "min_post", "(0, 1)", optional=True)
        check_min(self, "batch_size", 1)
        ok = isinstance(self.min_divergence, bool)
        _check(ok, "min_divergence", "true or false", self.min_divergence)


def stats_options(section: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`gmmspeech.ivector.stats.compute_stats` that an
    ``ivector:`` section sets, from the section or a pipeline stage's view of it.

    One place maps the section to the call, so that a new statistics key reaches the
    pipeline's stats, caltv and fold stages and ``gmmspeech train-tv`` alike.
    """
    return {"top_n": section.top_n, "min_post": section.min_post}


@dataclass(frozen=True)
class BackendConfig:
    """The i-vector back end (:mod:`gmmspeech.ivector.backend`), trained on the background i-vectors.

    Parameters
    ----------
    lda_dim : int, "auto" or None
        Project on this many LDA dimensions: at most the i-vector rank and the number of
        speakers of every back end minus one (the main back end's, on every background
        speaker, and those of the held-out groups, on the others). ``auto``: with PLDA, the
        largest such dimension up to :data:`gmmspeech.ivector.limits.LDA_CAP`, the same for
        every back end; with cosine, no LDA. None: no LDA.
    wccn : bool
        Within-class covariance normalisation after LDA.
    length_norm : bool
        Length-normalise the vectors (after centring on the background mean) before the scorer.
    scorer : {"auto", "plda", "cosine"}
        Two-covariance PLDA log-likelihood ratios, or cosine similarity. LDA, WCCN and PLDA
        need two or more background utterances of every speaker; cosine without LDA and
        WCCN needs no speaker labels. ``auto``: PLDA when every back end's speakers allow
        it, else cosine. The choices of ``auto`` are logged and recorded.
    plda_iter : int
        EM iterations of the PLDA.
    """

    lda_dim: int | str | None = AUTO
    wccn: bool = False
    length_norm: bool = True
    scorer: str = AUTO
    plda_iter: int = 10

    def __post_init__(self) -> None:
        normalise(self)
        lda = self.lda_dim
        if isinstance(lda, float) and not isinstance(lda, bool) and lda.is_integer():
            object.__setattr__(self, "lda_dim", int(lda))  # 25.0 and 25: one config, one hash
        lda = self.lda_dim
        ok = lda is None or lda == AUTO or (type(lda) is int and lda >= 1)
        _check(ok, "lda_dim", "'auto', null or an integer >= 1", lda)
        _check(isinstance(self.wccn, bool), "wccn", "true or false", self.wccn)
        _check(isinstance(self.length_norm, bool), "length_norm", "true or false", self.length_norm)
        check_choice(self, "scorer", (AUTO, *SCORERS))
        check_min(self, "plda_iter", 0)

    @property
    def resolved(self) -> bool:
        """Whether no option is ``auto`` (a back end can be fitted with it as it is)."""
        return AUTO not in (self.lda_dim, self.scorer)

    @property
    def needs_speakers(self) -> bool:
        """Whether training needs within-speaker statistics (two utterances per speaker);
        of a :attr:`resolved` config."""
        return self.lda_dim is not None or self.wccn or self.scorer == "plda"


__all__ = ["AUTO", "SCORERS", "SYSTEMS", "BackendConfig", "IVectorConfig"]
