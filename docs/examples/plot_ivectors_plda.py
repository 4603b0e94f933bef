"""
i-vectors and PLDA
==================

An i-vector is a fixed-length summary of an utterance of any length: the posterior mean
of a low-rank offset ``w`` in ``M = m + T w``, where ``M`` is the utterance's stacked
component means and ``T`` the *total variability* subspace trained by EM on the UBM's
Baum-Welch statistics (:class:`gmmspeech.TotalVariability`). A back end then projects
them (LDA), whitens the within-speaker scatter (WCCN), length-normalises them and scores
trials with a two-covariance PLDA model (:class:`gmmspeech.PLDA`).
"""

import matplotlib.pyplot as plt
import numpy as np

import gmmspeech as gs

rng = np.random.default_rng(5)
D, K_WORLD = 8, 12
world = rng.normal(0, 3, size=(K_WORLD, D))


def utterance(means, n=300):
    k = rng.choice(K_WORLD, size=n, p=rng.dirichlet(np.ones(K_WORLD)))
    x = means[k] + rng.normal(0, 0.4, size=D) + rng.normal(0, 1, size=(n, D))
    return x.astype(np.float32)


def new_speaker():
    return world + rng.normal(0, 0.5, size=world.shape)


# %%
# 60 background speakers with 6 utterances each train the UBM, the TV model and the back
# end; 15 evaluation speakers with 6 utterances each give the trials.
bg_utts, bg_spk = [], []
for i in range(60):
    means = new_speaker()
    for _ in range(6):
        bg_utts.append(utterance(means))
        bg_spk.append(f"bg{i}")
ubm = gs.train_ubm(bg_utts, 16, progress=False)

bg_stats = gs.compute_stats(ubm, bg_utts)  # zeroth (n, K) and centred first order (n, K, D)
tv = gs.TotalVariability(rank=20, n_iter=5, random_state=0).fit(bg_stats)
bg_iv = tv.transform(bg_stats)
print("i-vectors:", bg_iv.shape)
print("EM auxiliary per iteration:", [round(h["auxiliary"]) for h in tv.history_])

# %%
# The back end: LDA to 10 dimensions, WCCN, length normalisation, PLDA.
lda = gs.LDA(10).fit(bg_iv, bg_spk)
wccn = gs.WCCN().fit(lda.transform(bg_iv), bg_spk)


def project(iv):
    return gs.length_normalize(wccn.transform(lda.transform(iv)))


plda = gs.PLDA(n_iter=10).fit(project(bg_iv), bg_spk)

ev_utts, ev_spk = [], []
for i in range(15):
    means = new_speaker()
    for _ in range(6):
        ev_utts.append(utterance(means))
        ev_spk.append(i)
ev_spk = np.array(ev_spk)
x = project(tv.transform(gs.compute_stats(ubm, ev_utts)))

# %%
# Enrol each speaker on its first 2 utterances (scored exactly by PLDA, not averaged) and
# test against the other 4 of every speaker.
enrol = [x[ev_spk == s][:2] for s in range(15)]
test_mask = np.concatenate([[False, False, True, True, True, True]] * 15)
test = x[test_mask]
is_target = ev_spk[None, :][:, test_mask] == np.arange(15)[:, None]

systems = {
    "PLDA": plda.score(enrol, test),
    "cosine": gs.cosine_score(enrol, test),
}
for name, s in systems.items():
    print(f"{name:6s} EER {100 * gs.eer(s.ravel(), is_target.ravel()):.2f} %")

# %%
# The first two LDA dimensions of the evaluation speakers' i-vectors (each colour a
# speaker, never seen in training), and the DET curves of PLDA and cosine scoring.
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
axes[0].scatter(x[:, 0], x[:, 1], c=ev_spk, cmap="tab20", s=25)
axes[0].set_title("evaluation i-vectors after LDA, WCCN, length norm")
axes[0].set_xlabel("dimension 1")
axes[0].set_ylabel("dimension 2")
gs.plot_det(
    {k: (v.ravel(), is_target.ravel()) for k, v in systems.items()}, ax=axes[1], limits=(0.005, 0.6)
)
fig.tight_layout()
plt.show()
