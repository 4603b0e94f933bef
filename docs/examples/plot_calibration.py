"""
Calibration: actDCF against minDCF, and a reliability plot
==========================================================

A score is *calibrated* when it is a log-likelihood ratio one can threshold at the Bayes
threshold ``-logit(P_tar)`` (for unit costs). Raw GMM-UBM scores are not: at
``P_tar = 0.01`` the threshold is 4.6, and their actual DCF (actDCF) at that threshold is
far above the best DCF any threshold reaches (minDCF). :class:`gmmspeech.LogisticCalibration`
fits ``llr = a * score + b`` by prior-weighted logistic regression on labelled trials of
*other* speakers, and brings actDCF close to minDCF on the evaluation trials.
"""

import matplotlib.pyplot as plt
import numpy as np

import gmmspeech as gs

rng = np.random.default_rng(7)
D, K_WORLD = 8, 12
world = rng.normal(0, 3, size=(K_WORLD, D))


def utterance(means, n=250):
    k = rng.choice(K_WORLD, size=n, p=rng.dirichlet(np.ones(K_WORLD)))
    x = means[k] + rng.normal(0, 0.4, size=D) + rng.normal(0, 1, size=(n, D))
    return x.astype(np.float32)


def new_speaker():
    return world + rng.normal(0, 0.5, size=world.shape)


ubm = gs.train_ubm([utterance(new_speaker()) for _ in range(100)], 32, progress=False)


def trials(n_speakers, tag):
    """Enrol speakers on 2 utterances, test each model against 4 utterances of each
    speaker; returns flat scores and labels."""
    features, spk2utt, tests = {}, {}, []
    for i in range(n_speakers):
        spk, means = f"{tag}{i:02d}", new_speaker()
        spk2utt[spk] = [f"{spk}-e0", f"{spk}-e1"]
        for j in range(6):
            features[f"{spk}-{'e' if j < 2 else 't'}{j}"] = utterance(means)
        tests += [f"{spk}-t{j}" for j in range(2, 6)]
    models = gs.enroll(ubm, features, spk2utt)
    s = gs.score_matrix(ubm, models, features, tests)
    labels = np.array([[t.split("-")[0] == m for t in tests] for m in spk2utt])
    return s.ravel(), labels.ravel()


cal_scores, cal_labels = trials(20, "cal")  # calibration trials: other speakers
scores, labels = trials(25, "eval")  # evaluation trials

# %%
# Fit on the calibration trials, weighted for the operating point ``P_tar = 0.01``, and
# apply to the evaluation trials.
P = 0.01
cal = gs.LogisticCalibration(prior=P).fit(cal_scores, cal_labels)
print(f"llr = {cal.slope_:.3f} * score + {cal.offset_:.3f}")
llrs = cal.transform(scores)

rows = {
    "raw scores": scores,
    "calibrated": llrs,
}
for name, x in rows.items():
    print(
        f"{name:11s} actDCF {gs.act_dcf(x, labels, p_target=P):.3f}  "
        f"minDCF {gs.min_dcf(x, labels, p_target=P):.3f}  Cllr {gs.cllr(x, labels):.3f}"
    )

# %%
# minDCF is the same for both (calibration is monotonic: it cannot change the order of
# the scores); actDCF falls to near it. The reliability plot bins the trials by the
# log-odds a score claims (the score read as an LLR, plus the log odds of this set's 4 %
# of targets) against the log-odds observed in each bin. The raw scores claim almost the
# same odds for every trial (a steep line: they are far too timid), while the calibrated
# LLRs follow the diagonal.
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
names = list(rows)
act = [gs.act_dcf(rows[n], labels, p_target=P) for n in names]
mind = [gs.min_dcf(rows[n], labels, p_target=P) for n in names]
x = np.arange(len(names))
axes[0].bar(x - 0.2, act, 0.4, label="actDCF")
axes[0].bar(x + 0.2, mind, 0.4, label="minDCF")
axes[0].set_xticks(x, names)
axes[0].set_ylabel(f"normalised DCF at P_tar = {P}")
axes[0].legend()

prior_logit = np.log(labels.mean() / (1 - labels.mean()))
for name, s in rows.items():
    log_odds = s + prior_logit  # predicted log-odds of a target, at this set's target rate
    edges = np.linspace(*np.quantile(log_odds, [0.005, 0.995]), 13)  # equal width
    which = np.clip(np.searchsorted(edges, log_odds, side="right") - 1, 0, 11)
    used = [b for b in range(12) if np.sum(which == b) >= 10]  # bins with 10+ trials
    pred = [log_odds[which == b].mean() for b in used]
    n_tar = np.array([labels[which == b].sum() for b in used])
    n_all = np.array([np.sum(which == b) for b in used])
    observed = np.log((n_tar + 0.5) / (n_all - n_tar + 0.5))  # smoothed empirical log-odds
    axes[1].plot(pred, observed, "o-", label=name)
lim = (-9, 9)
axes[1].plot(lim, lim, "k--", lw=1, label="perfect calibration")
axes[1].set_xlim(lim)
axes[1].set_ylim(lim)
axes[1].set_xlabel("predicted log-odds of a target (score + log prior odds)")
axes[1].set_ylabel("observed log-odds in the bin")
axes[1].set_title("Reliability (12 equal-width bins, 10+ trials each)")
axes[1].legend()
fig.tight_layout()
plt.show()
