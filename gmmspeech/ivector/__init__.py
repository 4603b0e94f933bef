"""i-vectors: utterance statistics, total variability and the back end.

``stats`` computes Baum-Welch statistics on a UBM; ``tv`` trains the total-variability model and
extracts i-vectors (``rfp`` holds its packed LAPACK); ``backend`` holds LDA, WCCN, length
normalisation, PLDA and cosine scoring.

May import: everything below it: the base layer, :mod:`gmmspeech.engine`,
:mod:`gmmspeech.corpus`, :mod:`gmmspeech.features` and :mod:`gmmspeech.mixture`.
"""
