"""Speed and memory benchmarks behind ``gmmspeech bench``.

Each module provides ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; the
modules are listed in :data:`BENCHMARKS`. :mod:`.projection` and :mod:`.throughput` are
the model and the measurements behind ``bench project``.
"""

BENCHMARKS: tuple[str, ...] = (
    "em",
    "ubm",
    "features",
    "scoring",
    "scale",
    "tv",
    "trials",
    "longfile",
    "patterns",
    "selection",
    "ivstats",
    "classify",
    "project",
)
