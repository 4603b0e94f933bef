"""
Choosing the number of components: BIC and held-out likelihood
==============================================================

More components always fit the training data better, so the training likelihood cannot
choose K. Two ways that can: the Bayesian information criterion
``BIC = -2 log L + p log N`` (``p`` free parameters; lower is better), and the mean
log-likelihood of *held-out* data, which stops rising once extra components only fit
noise. The data
here come from 4 Gaussians.
"""

import matplotlib.pyplot as plt
import numpy as np

import gmmspeech as gs

rng = np.random.default_rng(0)
centres = np.array([[0, 0], [4, 1], [1, 5], [5, 5]])
scales = np.array([[1.0, 0.6], [0.5, 1.0], [0.8, 0.8], [1.2, 0.5]])
X = np.concatenate([rng.normal(c, s, size=(250, 2)) for c, s in zip(centres, scales, strict=True)])
rng.shuffle(X)
train, held_out = X[:600], X[600:]

ks = range(1, 11)
fits = [gs.GaussianMixture(k, init="kmeans", n_init=2, random_state=0).fit(train) for k in ks]
bic = [gm.bic(train) for gm in fits]
aic = [gm.aic(train) for gm in fits]
train_ll = [gm.score(train) for gm in fits]
test_ll = [gm.score(held_out) for gm in fits]
print("K by BIC:", ks[int(np.argmin(bic))], " by held-out likelihood:", ks[int(np.argmax(test_ll))])

# %%
# BIC has its minimum at the true K; AIC penalises parameters less. The training
# likelihood keeps rising; the held-out one stops rising at the true K (here it stays
# nearly flat beyond it, since a diagonal mixture of many components still describes
# these clusters well).
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
axes[0].plot(ks, bic, "o-", label="BIC")
axes[0].plot(ks, aic, "s-", label="AIC")
axes[0].axvline(4, color="0.5", ls=":", label="true K")
axes[0].set_xlabel("K")
axes[0].set_ylabel("criterion (lower is better)")
axes[0].legend()
axes[1].plot(ks, train_ll, "o-", label="training data")
axes[1].plot(ks, test_ll, "s-", label="held-out data")
axes[1].axvline(4, color="0.5", ls=":")
axes[1].set_xlabel("K")
axes[1].set_ylabel("mean log-likelihood per sample")
axes[1].legend()
fig.tight_layout()
plt.show()
