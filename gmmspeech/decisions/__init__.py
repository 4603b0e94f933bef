"""From models to decisions: scoring, cohort normalisation, calibration, fusion, metrics.

``scoring`` computes LLRs (exact, top-C, linear); ``norm`` the Z/T/ZT/S/AS-norms; ``heldout``,
``backgroundtrials`` and ``enroltrials`` score trials under models that have not seen their
speakers; ``calibration`` and ``fusion`` map scores to LLRs; ``metrics`` and ``plots`` evaluate
them; ``classifier`` decides among classes by scoring class models.

May import: every library layer below it (base, engine, corpus, features, mixture, ivector).
"""
