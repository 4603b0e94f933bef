"""Corpora as text: the one table parser, data dirs, trial lists, score files and layouts.

``prepare`` turns a folder of audio (``layout``) into data dirs, speaker splits, enrolment
protocols, trial lists and cross-validation folds.

May import: the base layer (:mod:`gmmspeech.errors`, :mod:`gmmspeech.config`,
:mod:`gmmspeech.storage`).
"""
