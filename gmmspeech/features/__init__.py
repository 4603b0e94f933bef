"""Audio to features, and the HDF5 feature store.

``audio`` and ``mp3`` decode any soundfile format or MP3 to mono float32; ``frontend`` calls
librosa for MFCCs and deltas and applies the VAD and CMVN or warping; ``blockfeatures`` and
``spill`` handle long files in bounded memory; ``store`` is the feature archive;
``extraction`` is the resumable extraction job that fills it.

May import: the base layer, :mod:`gmmspeech.engine` and :mod:`gmmspeech.corpus`.
"""
