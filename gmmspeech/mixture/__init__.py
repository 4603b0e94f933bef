"""Diagonal-covariance Gaussian mixtures: the model, its statistics, EM and MAP.

``gmm`` holds :class:`DiagGMM` and the one block kernel; ``stats`` the sufficient statistics;
``em`` and ``ubm`` training by splitting; ``map`` MAP adaptation; ``speakermodels`` and
``modelbank`` many adapted models of one UBM; ``estimator`` the scikit-learn estimator
:class:`GaussianMixture` over them.

May import: the base layer, :mod:`gmmspeech.engine`, :mod:`gmmspeech.corpus` and
:mod:`gmmspeech.features`.
"""
