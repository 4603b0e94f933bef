"""Files that gmmspeech writes, and where data came from.

``atomic`` is the one output gate (temporary file, fsync, rename, refusing what must not be
replaced); ``outputs`` recognises the toolkit's own files; ``provenance`` fingerprints inputs and
refuses data of mixed origins; ``lineage`` lists every artefact kind, what it records of its
parents and which code checks it; ``h5io`` holds the HDF5 conventions every file type shares.

May import: :mod:`gmmspeech.errors`, :mod:`gmmspeech._version` and :mod:`gmmspeech.config`.
"""
