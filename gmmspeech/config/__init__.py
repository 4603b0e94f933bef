"""Configuration: the frozen section dataclasses (the only place defaults live) and reading them.

``sections`` holds one dataclass per stage and the experiment config; ``data``, ``ivector`` and
``fusion`` hold the sections of those systems; ``loader`` reads YAML (``safe_load``), expands
``${env:NAME}``, applies ``--set`` overrides and reports errors as ``file:line``.

May import: :mod:`gmmspeech.errors` and :mod:`gmmspeech._version` only.
"""
