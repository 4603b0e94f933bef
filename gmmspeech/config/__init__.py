"""Configuration: the frozen section dataclasses (the only place defaults live) and reading them.

Sections: ``sections`` (scoring, compute, the experiment), ``features``, ``models`` (UBM and
MAP), ``data``, ``ivector``, ``fusion``; ``base`` their JSON form, hash and checks. Reading:
``loader`` (entry points) over ``yamlfile`` (safe YAML, ``${env:NAME}``, ``file:line``),
``overrides`` (``--set``) and ``build`` (typed sections, "did you mean").

May import: :mod:`gmmspeech.errors` and :mod:`gmmspeech._version` only.
"""
