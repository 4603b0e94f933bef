"""The bundled demo: a speaker-verification experiment on recordings shipped in ``data/``.

May import: the base layer and :mod:`gmmspeech.pipeline`.
"""
