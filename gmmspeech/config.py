"""Configuration dataclasses: the only place where defaults live.

Each stage has a frozen dataclass. ``to_dict`` / ``config_hash`` give the JSON form stored
next to outputs and a stable hash used to decide whether a stage's output is up to date.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-compatible dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_hash(cfg: Any) -> str:
    """A stable 16-hex-digit hash of a config dataclass or JSON-compatible dict."""
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _check(cond: bool, name: str, rule: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name}: must be {rule}, got {value!r}")


@dataclass(frozen=True)
class UBMConfig:
    """Options of UBM training (:func:`gmmspeech.train_ubm`).

    Parameters
    ----------
    n_components : int
        Target number of Gaussians. Any positive integer: binary splitting up to the largest
        power of two below it, then the heaviest components only (never rounded).
    iterations_per_stage : tuple of int
        EM iterations after each split; stage ``j`` (after the ``j``-th split) runs entry
        ``j - 1``, and the last entry repeats for later stages.
    final_max_iterations : int
        At the target size, after the scheduled iterations, EM continues until the relative
        change of the mean log-likelihood per frame falls below ``tolerance`` or this many
        extra iterations have run.
    tolerance : float
        Relative log-likelihood change that ends the final stage.
    split_epsilon : float
        Split offset in standard deviations: means ``mu -/+ split_epsilon * sigma`` along
        each component's highest-variance dimension.
    var_floor_ratio : float
        Variance floor as a fraction of the global per-dimension variance of the data,
        applied at every M-step.
    min_count : float
        A component with fewer (soft) frames than this is dead and re-seeded.
    min_weight : float
        A component with a smaller weight than this is dead and re-seeded.
    chunk_size : int
        Frames per block in the E-step (memory O(chunk_size x K)).
    max_frames : int or None
        If the data has more frames, train on a seeded random subset of this many.
    random_state : int
        Seed of the frame subset (training is otherwise deterministic).
    """

    n_components: int = 512
    iterations_per_stage: tuple[int, ...] = (1, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)
    final_max_iterations: int = 10
    tolerance: float = 1e-4
    split_epsilon: float = 0.5
    var_floor_ratio: float = 1e-2
    min_count: float = 10.0
    min_weight: float = 1e-5
    chunk_size: int = 2048
    max_frames: int | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "iterations_per_stage", tuple(self.iterations_per_stage))
        _check(int(self.n_components) >= 1, "n_components", ">= 1", self.n_components)
        _check(
            len(self.iterations_per_stage) >= 1
            and all(int(i) >= 0 for i in self.iterations_per_stage),
            "iterations_per_stage",
            "a non-empty list of iteration counts >= 0",
            self.iterations_per_stage,
        )
        _check(self.final_max_iterations >= 0, "final_max_iterations", ">= 0", self.final_max_iterations)
        _check(self.tolerance >= 0, "tolerance", ">= 0", self.tolerance)
        _check(0 < self.split_epsilon <= 5, "split_epsilon", "in (0, 5]", self.split_epsilon)
        _check(0 <= self.var_floor_ratio < 1, "var_floor_ratio", "in [0, 1)", self.var_floor_ratio)
        _check(self.min_count >= 0, "min_count", ">= 0", self.min_count)
        _check(0 <= self.min_weight < 1, "min_weight", "in [0, 1)", self.min_weight)
        _check(self.chunk_size >= 1, "chunk_size", ">= 1", self.chunk_size)
        _check(
            self.max_frames is None or self.max_frames >= 1,
            "max_frames",
            "None or >= 1",
            self.max_frames,
        )
