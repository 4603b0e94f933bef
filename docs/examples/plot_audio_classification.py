"""
Audio source classification, with a confusion matrix
====================================================

:class:`gmmspeech.GMMClassifier` classifies variable-length feature sequences with one GMM
per class: a UBM trained on every class, MAP-adapted to each class (means and weights by
default), and the class whose model gives the highest average log-likelihood wins. Here
the "recordings" are one-second synthetic sounds of five sources, turned into MFCCs by the
toolkit's librosa front end (:func:`gmmspeech.extract_features`).
"""

import matplotlib.pyplot as plt
import numpy as np

import gmmspeech as gs

SR = 16000
rng = np.random.default_rng(0)
t = np.arange(SR) / SR


def sound(source):
    """One second of a source, with random pitch, level and background noise."""
    f0 = rng.uniform(150, 400)
    if source == "whistle":
        x = np.sin(2 * np.pi * rng.uniform(1500, 2500) * t)
    elif source == "hum":
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    elif source == "siren":
        x = np.sin(2 * np.pi * (f0 * 4 * t + 300 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)))
    elif source == "rain":
        x = np.convolve(rng.normal(size=t.size), np.ones(4) / 4, mode="same")
    else:  # "clock": clicks
        x = np.zeros_like(t)
        period = int(SR / rng.uniform(4, 10))
        for start in range(int(rng.integers(period)), t.size - 200, period):
            x[start : start + 200] += rng.normal(size=200) * np.exp(-np.arange(200) / 30)
    x = x / np.abs(x).max() * rng.uniform(0.1, 0.8)
    noise = np.convolve(rng.normal(size=t.size), np.ones(3) / 3, mode="same")
    return (x + rng.uniform(0.02, 0.25) * noise).astype(np.float32)


SOURCES = ["whistle", "hum", "siren", "rain", "clock"]
config = gs.FeatureConfig(n_mfcc=13, deltas=1)
X, y = [], []
for source in SOURCES:
    for _ in range(16):
        X.append(gs.extract_features(sound(source), SR, config))
        y.append(source)
y = np.array(y)
print(len(X), "sounds; features of the first:", X[0].shape)

# %%
# Ten sounds of each source train, six test.
train = np.tile(np.arange(16) < 10, len(SOURCES))
clf = gs.GMMClassifier(n_components=16, random_state=0, ubm_options={"tolerance": 1e-3})
clf.fit([x for x, k in zip(X, train, strict=True) if k], y[train])
predicted = clf.predict([x for x, k in zip(X, train, strict=True) if not k])
print("accuracy:", gs.identification_accuracy(y[~train], predicted))

# %%
# Rows are the true source, columns the predicted one.
counts, labels = gs.confusion_matrix(y[~train], predicted, labels=SOURCES)
fig, ax = plt.subplots(figsize=(5.5, 4.5))
im = ax.imshow(counts, cmap="Blues")
ax.set_xticks(range(len(labels)), labels, rotation=45)
ax.set_yticks(range(len(labels)), labels)
for i in range(len(labels)):
    for j in range(len(labels)):
        ax.text(
            j,
            i,
            int(counts[i, j]),
            ha="center",
            va="center",
            color="white" if counts[i, j] > counts.max() / 2 else "black",
        )
ax.set_xlabel("predicted")
ax.set_ylabel("true")
ax.set_title("GMM classifier, 16 components")
fig.colorbar(im)
fig.tight_layout()

# %%
# The classifier's class posteriors for each test sound.
proba = clf.predict_proba([x for x, k in zip(X, train, strict=True) if not k])
fig, ax = plt.subplots(figsize=(8, 3))
ax.imshow(proba.T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
ax.set_yticks(range(len(clf.classes_)), clf.classes_)
ax.set_xlabel("test sound (6 of each source, in the order above)")
ax.set_title("P(class | sound)")
fig.tight_layout()
plt.show()
