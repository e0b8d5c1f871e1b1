"""Backbones the experiments train: a ReLU MLP and a small ReLU CNN.

Both are analysable by the exact engines: ReLU only, average pooling (no max-pool),
optional BatchNorm (analysed in eval mode). Each maps (B, 1, 28, 28) images to
(B, feature_dim) features, the output of its last ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from reluscope._validation import check_int, message
from reluscope.errors import InputValueError


def _check_widths(widths: Sequence[int], where: str) -> list[int]:
    values = list(widths)
    if not values:
        raise InputValueError(message(where, "a non-empty list of positive integers", repr(widths),
                                      "Pass e.g. [256, 256, 256]."))
    return [check_int(w, f"each of {where}", example="[256, 256, 256]") for w in values]


class MLP(nn.Sequential):
    """Flatten, then ``Linear -> [BatchNorm1d] -> ReLU`` for each width.

    Parameters
    ----------
    widths : sequence of int
        Hidden widths; the last is ``feature_dim``.
    in_features : int
        Flattened input size (784 for 28x28 images).
    batchnorm : bool
        BatchNorm before each ReLU.
    """

    def __init__(self, widths: Sequence[int] = (256, 256, 256), in_features: int = 784,
                 batchnorm: bool = False) -> None:
        sizes = _check_widths(widths, "`widths` of MLP")
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for width in sizes:
            layers.append(nn.Linear(prev, width))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            prev = width
        super().__init__(*layers)
        self.feature_dim = prev


class SmallCNN(nn.Sequential):
    """``[Conv3x3 -> [BatchNorm2d] -> ReLU -> AvgPool2]`` per channel count, then a ReLU layer.

    Parameters
    ----------
    channels : sequence of int
        Channels of each conv block (each halves the resolution: 28 -> 14 -> 7).
    hidden : int
        Width of the final ``Linear -> ReLU`` (``feature_dim``).
    batchnorm : bool
    in_channels, image_size : int
    """

    def __init__(self, channels: Sequence[int] = (16, 32), hidden: int = 256, batchnorm: bool = False,
                 in_channels: int = 1, image_size: int = 28) -> None:
        chans = _check_widths(channels, "`channels` of SmallCNN")
        _check_widths([hidden], "`hidden` of SmallCNN")
        layers: list[nn.Module] = []
        prev, size = in_channels, image_size
        for c in chans:
            layers.append(nn.Conv2d(prev, c, 3, padding=1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c))
            layers += [nn.ReLU(), nn.AvgPool2d(2)]
            prev, size = c, size // 2
        layers += [nn.Flatten(), nn.Linear(prev * size * size, hidden), nn.ReLU()]
        super().__init__(*layers)
        self.feature_dim = hidden


class LeNet(nn.Sequential):
    """LeNet-style: ``[Conv5x5 -> ReLU -> MaxPool2]`` per channel count, then a ReLU layer.

    The max-pools make it the zoo's network with max-pooling (see
    :mod:`reluscope.regions.pools` for how the engines handle it).

    Parameters
    ----------
    channels : sequence of int
        Channels of each conv block (28 -> 24 -> 12 -> 8 -> 4 for two blocks).
    hidden : int
        Width of the final ``Linear -> ReLU`` (``feature_dim``).
    in_channels, image_size : int
    """

    def __init__(self, channels: Sequence[int] = (6, 16), hidden: int = 120, in_channels: int = 1,
                 image_size: int = 28) -> None:
        chans = _check_widths(channels, "`channels` of LeNet")
        _check_widths([hidden], "`hidden` of LeNet")
        layers: list[nn.Module] = []
        prev, size = in_channels, image_size
        for c in chans:
            if size < 6:
                raise InputValueError(message("`channels` of LeNet", "at most as many blocks as the "
                                              "image size allows (each block: -4, then / 2)",
                                              f"{len(chans)} blocks on {image_size}x{image_size}",
                                              "Use fewer channel counts or a larger image_size."))
            layers += [nn.Conv2d(prev, c, 5), nn.ReLU(), nn.MaxPool2d(2)]
            prev, size = c, (size - 4) // 2
        layers += [nn.Flatten(), nn.Linear(prev * size * size, hidden), nn.ReLU()]
        super().__init__(*layers)
        self.feature_dim = hidden


def build_backbone(kind: str, width: int = 256, depth: int = 3, batchnorm: bool = False,
                   options: dict[str, Any] | None = None) -> nn.Module:
    """``"mlp"``: ``depth`` layers of ``width``; ``"cnn"``: SmallCNN with a ``width`` head;
    ``"lenet"``: LeNet (max-pooling) with a ``width`` head;
    ``"package.module:factory"``: the user's own (see :mod:`reluscope.nets.custom`), called
    with `options`."""
    from reluscope.nets.custom import custom_backbone, is_import_path

    if kind == "mlp":
        return MLP([width] * depth, batchnorm=batchnorm)
    if kind == "cnn":
        return SmallCNN(hidden=width, batchnorm=batchnorm)
    if kind == "lenet":
        return LeNet(hidden=width)
    if is_import_path(kind):
        return custom_backbone(kind, width, depth, options)
    raise InputValueError(message("`kind` of build_backbone",
                                  "'mlp', 'cnn', 'lenet' or 'package.module:factory'", repr(kind),
                                  "Pick a built-in backbone or name your own factory."))
