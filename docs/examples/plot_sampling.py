"""
Sampling from a fitted mixture, in 1-D and 2-D
==============================================

A fitted mixture is a generative model: :meth:`~gmmspeech.GaussianMixture.sample` draws a
component by its weight, then a sample from that component's Gaussian. Samples drawn from
a good fit look like the data; their histogram follows the fitted density.
"""

import matplotlib.pyplot as plt
import numpy as np

import gmmspeech as gs

rng = np.random.default_rng(3)
x = np.concatenate([rng.normal(-2, 0.6, 400), rng.normal(1.5, 1.2, 600)])[:, None]
gm1 = gs.GaussianMixture(2, random_state=0).fit(x)
drawn, labels = gm1.sample(5000)

grid = np.linspace(-5, 6, 400)[:, None]
fig, ax = plt.subplots(figsize=(7, 4.3))
axes = [ax]
axes[0].hist(x[:, 0], bins=50, density=True, alpha=0.5, label="data (1,000)")
axes[0].hist(drawn[:, 0], bins=80, density=True, histtype="step", lw=2, label="samples (5,000)")
axes[0].plot(grid, np.exp(gm1.score_samples(grid)), "k", label="fitted density")
axes[0].set_title("1-D: two components")
axes[0].legend()
fig.tight_layout()
print("fraction drawn from each component:", np.bincount(labels) / labels.size)
print("fitted weights:", gm1.weights_.round(3))

# %%
# In 2-D: a ring is no Gaussian, but 8 diagonal components cover it. The samples,
# coloured by the component they came from, beside the data.
angle = rng.uniform(0, 2 * np.pi, 1500)
ring = np.c_[4 * np.cos(angle), 2 * np.sin(angle)] + rng.normal(0, 0.3, (1500, 2))
gm2 = gs.GaussianMixture(8, random_state=0).fit(ring)
drawn2, labels2 = gm2.sample(1500)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), sharex=True, sharey=True)
axes[0].scatter(*ring.T, s=3, c="0.5")
axes[0].set_title("data (1,500)")
axes[0].set_aspect("equal")
axes[1].scatter(*drawn2.T, s=3, c=labels2, cmap="tab10")
axes[1].set_title("1,500 samples of 8 diagonal components, by component")
axes[1].set_aspect("equal")
fig.tight_layout()
plt.show()
