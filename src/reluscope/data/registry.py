"""The datasets reluscope knows: files, checksums of their uncompressed bytes, mirrors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset's files.

    Attributes
    ----------
    name : str
        Registry key, also the folder name inside a data directory.
    md5 : dict
        File stem (e.g. ``"train-images-idx3-ubyte"``) -> MD5 of the uncompressed IDX bytes
        (gzip bytes differ between mirrors; the content does not).
    mirrors : tuple of str
        Base URLs serving ``<stem>.gz``, tried in order.
    classes : tuple of str
        Class names by label.
    mean, std : float
        Pixel statistics of the training split (pixels in [0, 1]).
    train_size : int
        Images in the training split.
    """

    name: str
    md5: dict[str, str]
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    mean: float
    std: float
    train_size: int = 60_000


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
         "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
         "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
         "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        tuple(str(i) for i in range(10)), 0.1307, 0.3081),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
         "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
         "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
         "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"), 0.2860, 0.3530),
}
