"""
An N-D fit and its ellipses
===========================

A diagonal-covariance mixture in ``D`` dimensions has, per component, a weight, a mean
vector and one variance per dimension: its equal-density contours are ellipsoids whose
axes are parallel to the coordinate axes. This example fits 3-D data and draws each pair of
dimensions with the fitted components' 1- and 2-sigma ellipses. A tilted (correlated)
cluster cannot be one axis-aligned component, so the mixture covers it with several, which
is why speech models use many diagonal components rather than few full ones.
"""

import itertools

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

import gmmspeech as gs

rng = np.random.default_rng(2)
blobs = [
    rng.normal([0, 0, 0], [1.0, 0.5, 0.7], size=(3000, 3)),
    rng.normal([5, 4, -2], [0.6, 1.2, 0.5], size=(2000, 3)),
]
tilt = rng.normal(0, 1, size=(3000, 1)) * np.array([2.0, -1.6, 1.0])
blobs.append(np.array([-4, 5, 3]) + tilt + rng.normal(0, 0.35, size=(3000, 3)))
X = np.concatenate(blobs).astype(np.float32)

gmm = gs.train_ubm(X, 8, tolerance=1e-3, final_max_iterations=50, progress=False)
print("weights:", np.round(gmm.weights, 3))
print("mean log-likelihood per frame:", round(gmm.score(X), 3))

# %%
# Each panel is one pair of dimensions; line width grows with the component's weight.
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
for ax, (i, j) in zip(axes, itertools.combinations(range(3), 2), strict=True):
    ax.scatter(X[::4, i], X[::4, j], s=1, c="0.6")
    for k, (w, m, v) in enumerate(zip(gmm.weights, gmm.means, gmm.variances, strict=True)):
        for n_std, alpha in ((1, 0.9), (2, 0.4)):
            ax.add_patch(
                Ellipse(
                    (m[i], m[j]),
                    2 * n_std * np.sqrt(v[i]),
                    2 * n_std * np.sqrt(v[j]),
                    fill=False,
                    color=f"C{k}",
                    alpha=alpha,
                    lw=0.8 + 6 * w,
                )
            )
    ax.set_xlabel(f"x{i}")
    ax.set_ylabel(f"x{j}")
    ax.set_aspect("equal", adjustable="datalim")
fig.suptitle("8 diagonal components fitted to 3-D data")
fig.tight_layout()

# %%
# Colour each point by its most probable component (the largest posterior).
post = gmm.posteriors(X)
fig, ax = plt.subplots(figsize=(5, 4.5))
ax.scatter(X[::3, 0], X[::3, 1], s=2, c=post[::3].argmax(axis=1), cmap="tab10", vmin=0, vmax=9)
ax.set_xlabel("x0")
ax.set_ylabel("x1")
ax.set_title("hard assignment: argmax of the posteriors")
fig.tight_layout()
plt.show()
