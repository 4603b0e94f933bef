"""
Growing a UBM by splitting
==========================

:func:`gmmspeech.train_ubm` starts from one Gaussian (the global mean and variance) and
doubles the mixture stage by stage: every component is split in two along its widest
dimension, means ``mu +- eps * sigma``, and a few EM iterations follow each split. This
example grows an 8-component model on 2-D data and plots the mean log-likelihood per frame
after every iteration, coloured by stage, and the model at each size.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

import gmmspeech as gs

rng = np.random.default_rng(1)
centres = rng.uniform(-6, 6, size=(8, 2))
X = np.concatenate([rng.normal(c, [0.6, 0.9], size=(1500, 2)) for c in centres])
X = X.astype(np.float32)

# %%
# Train to 8 components with the default schedule (1, 2, 2, 4, ... iterations per stage,
# then up to 40 more here). ``history_`` holds one entry per iteration.
ubm = gs.train_ubm(X, 8, final_max_iterations=40, tolerance=1e-3, progress=False)
history = ubm.history_
for h in history[:6]:
    print(h)

# %%
# The log-likelihood jumps at every split and climbs within a stage: EM never lowers it.
stages = sorted({h["stage"] for h in history})
fig, ax = plt.subplots(figsize=(7, 4))
for stage in stages:
    pts = [(i, h["log_likelihood"]) for i, h in enumerate(history) if h["stage"] == stage]
    k = next(h["n_components"] for h in history if h["stage"] == stage)
    ax.plot(*zip(*pts, strict=True), "o-", label=f"K = {k}")
ax.set_xlabel("EM iteration (all stages)")
ax.set_ylabel("mean log-likelihood per frame")
ax.set_title("UBM training by binary splitting")
ax.legend()
fig.tight_layout()

# %%
# The same schedule stopped at each size shows where the components go.


def draw(ax, gmm, color="C3"):
    for w, m, v in zip(gmm.weights, gmm.means, gmm.variances, strict=True):
        for n_std in (1, 2):
            e = Ellipse(
                m,
                2 * n_std * np.sqrt(v[0]),
                2 * n_std * np.sqrt(v[1]),
                fill=False,
                color=color,
                alpha=0.9 if n_std == 1 else 0.4,
                lw=1 + 4 * w,
            )
            ax.add_patch(e)


fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), sharex=True, sharey=True)
for ax, k in zip(axes, (1, 2, 4, 8), strict=True):
    model = (
        ubm
        if k == 8
        else gs.train_ubm(X, k, final_max_iterations=40, tolerance=1e-3, progress=False)
    )
    ax.scatter(X[::5, 0], X[::5, 1], s=2, c="0.6")
    draw(ax, model)
    ax.set_title(f"K = {k}: {model.score(X):.3f} per frame")
    ax.set_aspect("equal")
fig.tight_layout()
plt.show()
