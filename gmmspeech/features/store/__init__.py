"""HDF5 feature archive: the format, the reader and the writer, in one place.

* :mod:`.format` - the layout (``format_version`` 4, 3 still read), the index table, low-level dataset IO;
* :mod:`.reader` - :class:`FeatureStore` (a mapping ``utt_id -> (n_frames, n_features)``),
  :func:`read_utterances` (a worker's shard), :func:`open_features` (stores or foreign
  HDF5 feature files, for the commands);
* :mod:`.writer` - :class:`StoreWriter`, temporary-then-renamed stores, part files of a
  resumable extraction and their merge, :func:`write_store` for ready-made arrays.

The extraction job that fills a store from audio is :func:`gmmspeech.extract_to_store`.
"""

from __future__ import annotations

from .format import (
    FORMAT,
    FORMAT_VERSION,
    GROUP,
    INDEX,
    UttInfo,
    check_store_config,
    config_differences,
    decode_id,
    encode_id,
    open_store_file,
    read_frames,
    read_index,
    small_metadata_cache,
    write_frames,
)
from .reader import (
    FeatureStore,
    ForeignFeatures,
    OpenFiles,
    open_features,
    pack_blocks,
    read_utterances,
)
from .writer import PartWriter, SortedStore, StoreWriter, TempStore, merge_stores, write_store

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GROUP",
    "INDEX",
    "FeatureStore",
    "ForeignFeatures",
    "OpenFiles",
    "PartWriter",
    "SortedStore",
    "StoreWriter",
    "TempStore",
    "UttInfo",
    "check_store_config",
    "config_differences",
    "decode_id",
    "encode_id",
    "merge_stores",
    "open_features",
    "open_store_file",
    "pack_blocks",
    "read_frames",
    "read_index",
    "read_utterances",
    "small_metadata_cache",
    "write_frames",
    "write_store",
]
