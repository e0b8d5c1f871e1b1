"""Datasets: MNIST and Fashion-MNIST from their IDX files (verified, downloaded if missing)."""

from reluscope.data.idx import DataFileError, dataset_file, find_data_dir, load_idx_images, read_idx
from reluscope.data.registry import DATASETS, DatasetInfo

__all__ = ["DATASETS", "DataFileError", "DatasetInfo", "dataset_file", "find_data_dir", "load_idx_images",
           "read_idx"]
