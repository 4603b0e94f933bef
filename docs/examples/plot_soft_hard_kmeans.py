"""
Soft and hard assignments, next to k-means
==========================================

A Gaussian mixture assigns each sample *softly*: :meth:`~gmmspeech.GaussianMixture.predict_proba`
gives the probability of each component, and :meth:`~gmmspeech.GaussianMixture.predict`
takes the most probable one (a *hard* assignment). k-means is the hard-assignment limit of
EM with equal, spherical, shrinking variances: every sample goes to the nearest centre, so
it cannot model clusters of different widths. Here a wide cluster sits next to two narrow
ones.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse
from sklearn.cluster import KMeans

import gmmspeech as gs

rng = np.random.default_rng(0)
X = np.concatenate(
    [
        rng.normal([0, 0], [2.5, 2.5], size=(600, 2)),
        rng.normal([4.5, 0], [0.5, 0.5], size=(200, 2)),
        rng.normal([4.5, 2.5], [0.5, 0.5], size=(200, 2)),
    ]
)

gm = gs.GaussianMixture(3, init="kmeans", n_init=3, random_state=0).fit(X)
proba = gm.predict_proba(X)
hard = gm.predict(X)
km = KMeans(3, n_init=10, random_state=0).fit(X)

# %%
# Left: each sample coloured by the mixture of its responsibilities (red, green, blue for
# the three components); where components overlap the colours blend. Middle: the hard
# assignment with the components' 2-sigma ellipses: one wide and two narrow components, as
# the data were made. Right: k-means, whose boundaries lie half-way between centres and
# which prefers clusters of equal spread: on these data it splits the wide cluster in two
# and merges the two narrow ones.
fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), sharex=True, sharey=True)
axes[0].scatter(X[:, 0], X[:, 1], s=6, c=proba)
axes[0].set_title("GMM, soft: colour = responsibilities")
axes[1].scatter(X[:, 0], X[:, 1], s=6, c=hard, cmap="brg")
for m, v in zip(gm.means_, gm.covariances_, strict=True):
    axes[1].add_patch(Ellipse(m, 4 * np.sqrt(v[0]), 4 * np.sqrt(v[1]), fill=False, lw=2))
axes[1].set_title("GMM, hard: argmax of the responsibilities")
axes[2].scatter(X[:, 0], X[:, 1], s=6, c=km.labels_, cmap="brg")
axes[2].plot(*km.cluster_centers_.T, "kx", ms=12, mew=3)
axes[2].set_title("k-means: nearest centre")
for ax in axes:
    ax.set_aspect("equal")
fig.tight_layout()

# %%
# How sure the mixture is: the largest responsibility of each sample. Samples near the
# boundaries are shared, which k-means cannot express.
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(proba.max(axis=1), bins=40)
ax.set_xlabel("largest responsibility of a sample")
ax.set_ylabel("samples")
fig.tight_layout()
plt.show()
