"""
EM in 1-D, step by step
=======================

Expectation-maximisation for a Gaussian mixture alternates two steps. The **E-step**
computes each sample's *responsibilities*: the posterior probability that each component
produced it, ``r_nk = w_k N(x_n | mu_k, var_k) / sum_j w_j N(x_n | mu_j, var_j)``. The
**M-step** re-estimates every component from the samples, each weighted by its
responsibility: ``w_k = mean_n r_nk``, ``mu_k = sum_n r_nk x_n / sum_n r_nk``, and the
variance likewise. Each iteration can only raise the log-likelihood.

:class:`gmmspeech.GaussianMixture` (scikit-learn's interface on the toolkit's EM) is
stopped here after 1, 2, 5 and 30 iterations from the same random start, to watch the
components move.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np

import gmmspeech as gs

# a few iterations do not converge; that is the point here
warnings.filterwarnings("ignore", category=gs.ConvergenceWarning)

rng = np.random.default_rng(4)
x = np.concatenate([rng.normal(-4, 1.0, 300), rng.normal(0.5, 0.7, 200), rng.normal(4, 1.5, 500)])
X = x[:, None]
grid = np.linspace(-9, 10, 600)[:, None]


def fit(n_iter):
    return gs.GaussianMixture(3, init="random", max_iter=n_iter, tol=0, random_state=1).fit(X)


# %%
# The mixture density and its weighted components after each number of iterations.
steps = (1, 2, 5, 30)
fig, axes = plt.subplots(1, len(steps), figsize=(14, 3.6), sharey=True)
for ax, n_iter in zip(axes, steps, strict=True):
    gm = fit(n_iter)
    ax.hist(x, bins=60, density=True, color="0.8")
    ax.plot(grid, np.exp(gm.score_samples(grid)), "k", lw=2, label="mixture")
    for k in range(3):
        mu, var, w = gm.means_[k, 0], gm.covariances_[k, 0], gm.weights_[k]
        pdf = w * np.exp(-0.5 * (grid[:, 0] - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)
        ax.plot(grid, pdf, f"C{k}", lw=1.5)
        ax.axvline(mu, color=f"C{k}", ls=":", lw=1)
    ax.set_title(
        f"after {n_iter} iteration{'s' if n_iter > 1 else ''}\nlog-lik {gm.score(X):.3f} per sample"
    )
    ax.set_xlabel("x")
axes[0].set_ylabel("density")
fig.tight_layout()

# %%
# The responsibilities of the converged fit: at every x they sum to one. Where two
# components overlap a sample is shared between them ("soft" assignment).
gm = fit(30)
resp = gm.predict_proba(grid)
fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=(2, 1))
axes[0].stackplot(
    grid[:, 0],
    resp.T,
    colors=["C0", "C1", "C2"],
    alpha=0.7,
    labels=[f"r(x, k={k})" for k in range(3)],
)
axes[0].set_ylabel("responsibility")
axes[0].legend(loc="center left")
axes[1].hist(x, bins=60, color="0.6")
axes[1].set_xlabel("x")
axes[1].set_ylabel("samples")
fig.tight_layout()

# %%
# The mean log-likelihood per sample at every iteration never decreases.
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, len(gm.lower_bounds_) + 1), gm.lower_bounds_, "o-")
ax.set_xlabel("EM iteration")
ax.set_ylabel("mean log-likelihood per sample")
print("non-decreasing:", bool(np.all(np.diff(gm.lower_bounds_) >= -1e-9)))
fig.tight_layout()
plt.show()
