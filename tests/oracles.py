"""Independent reference computations for tests (float64, scipy, loops over components)."""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import logsumexp


def component_log_likelihoods(X, weights, means, variances):
    """log w_k + log N(x_t; mu_k, diag var_k) by scipy.stats.norm, one component at a time."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64).reshape(len(X), -1))
    out = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        out[:, k] = np.log(weights[k]) + stats.norm.logpdf(
            X, loc=means[k], scale=np.sqrt(variances[k])
        ).sum(axis=1)
    return out


def log_likelihood(X, weights, means, variances):
    return logsumexp(component_log_likelihoods(X, weights, means, variances), axis=1)


def posteriors(X, weights, means, variances):
    c = component_log_likelihoods(X, weights, means, variances)
    return np.exp(c - logsumexp(c, axis=1, keepdims=True))
