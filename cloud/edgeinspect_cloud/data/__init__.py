"""Datasets: the KolektorSDD2-style generator, the loader, the split, augmentation and the fingerprint.

Public API (numpy, OpenCV and Pillow only; no training framework is imported here)::

    write_dataset(out_dir, *, count, defect_ratio, seed, height=640, width=232, test_fraction=0.3,
                  families="classic")  # or "train" (broad) / "heldout" (evaluation only)
        -> SynthSummary
    refuse_heldout(root)                                   # DatasetError for a held-out family set
    list_split(root, split) -> list[SampleFiles]          # raises DatasetError
    read_sample(files) -> Sample                           # image HxWx3 uint8, mask HxW bool
    read_labels(files) -> bool array
    stratified_split(labels, val_fraction, seed) -> Split  # split FIRST...
    augment_batch(images, masks, rng, AugmentConfig())     # ...then augment training batches only
    balanced_order(labels, rng, defect_share) -> indices   # oversampling of defective images
    load_arrays(files, input_spec) -> ArraySet             # via edgeinspect.core.preprocess
    input_spec(height, width, mode="stretch") -> InputSpec
    dataset_fingerprint(root) -> str                       # sha256 hex
"""

from edgeinspect_cloud.data.arrays import ArraySet, input_spec, load_arrays
from edgeinspect_cloud.data.augment import AugmentConfig, augment_batch, balanced_order
from edgeinspect_cloud.data.dataset import (
    Sample,
    SampleFiles,
    list_split,
    read_labels,
    read_mask,
    read_sample,
)
from edgeinspect_cloud.data.fingerprint import dataset_fingerprint
from edgeinspect_cloud.data.split import Split, stratified_split
from edgeinspect_cloud.data.synth import SynthSummary, refuse_heldout, render_sample, write_dataset

__all__ = [
    "ArraySet",
    "AugmentConfig",
    "Sample",
    "SampleFiles",
    "Split",
    "SynthSummary",
    "augment_batch",
    "balanced_order",
    "dataset_fingerprint",
    "input_spec",
    "list_split",
    "load_arrays",
    "read_labels",
    "read_mask",
    "read_sample",
    "refuse_heldout",
    "render_sample",
    "stratified_split",
    "write_dataset",
]
