"""The ``features`` and ``merge`` stages: embeddings of a dataset -> features .h5.

* `extract` (``reid features``): rebuild the network from a checkpoint, embed every split.
* `merge_shards` (``reid merge``): join ``--shard i/n`` outputs into the file one run writes.
* `embed_records`: the array-level embedding loop (used by the training evaluation hook).
* `embed_images`: features of a list of image files with a checkpoint (or a loaded network).
"""

from reidcli.features.extract import BadImages, embed_records, extract, parse_shard, shard_slice
from reidcli.features.images import embed_images
from reidcli.features.merge import merge_shards

__all__ = ["BadImages", "embed_images", "embed_records", "extract", "merge_shards", "parse_shard", "shard_slice"]
