"""
LLR scoring of trials, with a DET curve
=======================================

A GMM-UBM verification score is the frame-averaged log-likelihood ratio of the test frames
under the speaker's MAP-adapted model and under the UBM,
``mean_t [log p(x_t | speaker) - log p(x_t | UBM)]``. Top-C scoring (the default, C = 5)
evaluates the speaker model only on the UBM's five best components per frame. This example
builds synthetic "speakers", enrols them, scores every model against every test utterance
and draws the score distributions and the DET curve of exact and top-C scoring.
"""

import matplotlib.pyplot as plt
import numpy as np

import gmmspeech as gs

rng = np.random.default_rng(0)
D, K_WORLD = 8, 12
world = rng.normal(0, 3, size=(K_WORLD, D))


def utterance(speaker_means, n=250):
    """Frames of one utterance: random cluster occupancy, the speaker's cluster means,
    and a per-utterance channel offset."""
    w = rng.dirichlet(np.ones(K_WORLD))
    k = rng.choice(K_WORLD, size=n, p=w)
    channel = rng.normal(0, 0.4, size=D)
    return (speaker_means[k] + channel + rng.normal(0, 1, size=(n, D))).astype(np.float32)


def new_speaker():
    return world + rng.normal(0, 0.35, size=world.shape)


# %%
# 40 background speakers train the UBM; 20 target speakers are enrolled on 3 utterances
# each and tested on 4 more.
background = [utterance(new_speaker()) for _ in range(40) for _ in range(3)]
ubm = gs.train_ubm(background, 32, progress=False)

targets = {f"spk{i:02d}": new_speaker() for i in range(20)}
features, spk2utt, test_ids = {}, {}, []
for spk, means in targets.items():
    spk2utt[spk] = []
    for j in range(7):
        utt = f"{spk}-{j}"
        features[utt] = utterance(means)
        (spk2utt[spk] if j < 3 else test_ids).append(utt)

models = gs.enroll(ubm, features, spk2utt)
print(models.n_components, "components,", models.n_features, "features per model")

# %%
# Every model against every test utterance: a (20, 80) matrix, of which the diagonal
# blocks are target trials.
is_target = np.array([[u.split("-")[0] == m for u in test_ids] for m in spk2utt])
scores = {
    method: gs.score_matrix(ubm, models, features, test_ids, method=method)
    for method in ("exact", "topc")
}
for method, s in scores.items():
    print(f"{method:6s} EER {100 * gs.eer(s.ravel(), is_target.ravel()):.2f} %")

# %%
# Target scores sit well above non-target scores; the DET curve plots misses against
# false alarms on normal-deviate axes, and top-C follows exact scoring closely.
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
s = scores["topc"].ravel()
axes[0].hist(s[~is_target.ravel()], bins=40, alpha=0.6, density=True, label="non-target")
axes[0].hist(s[is_target.ravel()], bins=20, alpha=0.6, density=True, label="target")
axes[0].set_xlabel("LLR score (top-5)")
axes[0].set_ylabel("density")
axes[0].legend()
gs.plot_det(
    {m: (s.ravel(), is_target.ravel()) for m, s in scores.items()}, ax=axes[1], limits=(0.005, 0.6)
)
fig.tight_layout()
plt.show()
