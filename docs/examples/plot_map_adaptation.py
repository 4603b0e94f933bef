"""
MAP adaptation and the relevance factor
=======================================

A speaker model is the UBM adapted to a little speech of one speaker (Reynolds, Quatieri &
Dunn 2000). Each component ``k`` moves its mean towards the mean of the frames it owns,
``E_k[x]``, by ``alpha_k = n_k / (n_k + r)``: a component that saw many frames (``n_k``
large) moves almost all the way, one that saw none keeps the UBM's mean. The relevance
factor ``r`` (16 by default) sets how much data "many" is.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

import gmmspeech as gs

rng = np.random.default_rng(0)
centres = np.array([[-4, -3], [-4, 3], [0, 0], [4, -3], [4, 3]], dtype=float)
X = np.concatenate([rng.normal(c, 1.0, size=(3000, 2)) for c in centres]).astype(np.float32)
ubm = gs.train_ubm(X, 8, progress=False)

# %%
# A "speaker": 300 frames from a shifted copy of two of the clusters only.
speaker = np.concatenate(
    [rng.normal(centres[i] + [1.2, 0.8], 1.0, size=(150, 2)) for i in (0, 3)]
).astype(np.float32)

fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), sharex=True, sharey=True)
for ax, r in zip(axes, (1.0, 16.0, 256.0), strict=True):
    model = gs.map_adapt(ubm, speaker, relevance_factor=r)
    ax.scatter(X[::10, 0], X[::10, 1], s=2, c="0.75")
    ax.scatter(speaker[:, 0], speaker[:, 1], s=3, c="C0", label="speaker frames")
    for m0, m1, v in zip(ubm.means, model.means, ubm.variances, strict=True):
        ax.add_patch(Ellipse(m0, 2 * np.sqrt(v[0]), 2 * np.sqrt(v[1]), fill=False, color="0.3"))
        ax.annotate("", m1, m0, arrowprops={"arrowstyle": "->", "color": "C3", "lw": 1.5})
    ax.set_title(f"relevance factor r = {r:g}")
    ax.set_aspect("equal")
axes[0].legend(loc="lower left")
fig.suptitle("UBM means (ellipses) and where MAP moves them (arrows)")
fig.tight_layout()

# %%
# The adaptation coefficient against the component's count, for several ``r``; the dots
# are this speaker's components (counts from :func:`gmmspeech.accumulate`). The adapted
# mean is exactly ``alpha E_k[x] + (1 - alpha) mu_k``:
stats = gs.accumulate(ubm, speaker)
n_k = stats.zeroth
model = gs.map_adapt(ubm, speaker, relevance_factor=16.0)
alpha = n_k / (n_k + 16.0)
mean_k = stats.first / np.maximum(n_k, 1e-10)[:, None] + stats.shift  # E_k[x]
expected = alpha[:, None] * mean_k + (1 - alpha[:, None]) * ubm.means
print("largest difference from the formula:", np.abs(model.means - expected).max())

n = np.logspace(-1, 3.5, 200)
fig, ax = plt.subplots(figsize=(7, 4))
for r in (1, 4, 16, 64, 256):
    ax.semilogx(n, n / (n + r), label=f"r = {r}")
ax.semilogx(np.maximum(n_k, 0.1), alpha, "ko", label="this speaker, r = 16")
ax.set_xlabel("frames owned by the component, n_k")
ax.set_ylabel("alpha_k = n_k / (n_k + r)")
ax.legend()
ax.set_title("How far a component moves towards the speaker's data")
fig.tight_layout()
plt.show()
