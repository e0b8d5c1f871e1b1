"""Datasets: IDX files of MNIST and Fashion-MNIST."""

from reluscope.data.idx import find_data_dir, load_idx_images, read_idx

__all__ = ["find_data_dir", "load_idx_images", "read_idx"]
