"""``reluscope slice``: the exact picture and metrics of a saved model on a plane through
three dataset images.

Given a model and three image indices, it computes the exact partition of the plane
through the three images, its metrics (with the decision boundary when the model outputs
logits), the exact regions along the segment from the first image to the second, and
writes

* ``partition.png``: the regions, their boundaries coloured by layer, the decision
  boundary and the three images at their points;
* ``partition_zoom.html``: every edge as vectors, to pan and zoom in a browser;
* ``path_profile.png`` (and ``.svg``): the outputs along the segment with its region
  boundaries;
* ``metrics.json``: the slice summary, the path measures and the timings;
* ``partition.npz`` and ``path.npz``: the exact partitions (reload with
  ``Partition2D.load`` / ``Partition1D.load``).

The model is either a reluscope checkpoint (``runs/<id>/checkpoints/step_*.pt`` with
its ``.json`` sidecar; ``--network`` picks the backbone or the backbone with its trained
head), read without unpickling code, or, only with ``--allow-pickle``, a whole module
saved with ``torch.save(model, path)`` or a ``torch.export.save`` program: unpickling
such a file runs code from it, so it is refused unless you say you trust it. TorchScript
archives are refused (their forward cannot be instrumented); export the module instead.

Usage: reluscope slice MODEL.pt --indices 0 1 2 [--dataset mnist] [--split test] [--out DIR]
       [--network full|backbone] [--allow-pickle]
"""

from __future__ import annotations

import argparse
import math
import pickle
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import reluscope as rs
from reluscope._files import write_json
from reluscope._validation import message
from reluscope.cli._arguments import add_allow_imports_argument, add_dataset_argument, apply_allow_imports
from reluscope.data.registry import DATASETS
from reluscope.errors import InputValueError

NAME = "slice"
HELP = "exact regions of a saved model on a plane through three images"

if TYPE_CHECKING:  # torch loads when a command runs, not for --help
    import numpy as np
    from torch import nn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the slice command."""
    parser.add_argument("model", help="a reluscope checkpoint (step_*.pt beside its .json), or with "
                        "--allow-pickle a whole module saved with torch.save(model, path)")
    parser.add_argument("--indices", type=int, nargs=3, required=True, metavar="I",
                        help="three image indices; the plane passes through them")
    add_dataset_argument(parser, list(DATASETS))
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    parser.add_argument("--out", default="outputs/slice", help="output folder")
    parser.add_argument("--margin", type=float, default=0.2, help="domain margin around the images")
    parser.add_argument("--input-shape", default="1,28,28",
                        help="shape of one model input, e.g. 1,28,28 or 784 (default 1,28,28)")
    parser.add_argument("--color-by", choices=("region", "active", "area"), default="region")
    parser.add_argument("--max-regions", type=int, default=5_000_000)
    parser.add_argument("--network", choices=("full", "backbone"), default="full",
                        help="for a reluscope checkpoint: the backbone with its trained head (classifier "
                        "or projector; default) or the backbone alone")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load a whole pickled module or a torch.export program; this RUNS CODE FROM "
                        "THE FILE: only for files you trust (default: refused)")
    add_allow_imports_argument(parser)


def load_model(path: str | Path, *, network: str = "full", allow_pickle: bool = False) -> nn.Module:
    """The model in `path`, in eval mode.

    A reluscope checkpoint (its ``.json`` sidecar beside it) is rebuilt from its config and
    weights (``weights_only`` loading: no code from the file runs); `network` picks
    ``"full"`` (backbone + trained head) or ``"backbone"``. A whole pickled module is loaded
    only with ``allow_pickle=True`` (unpickling runs code from the file), with a warning.
    """
    import torch
    from torch import nn

    source = Path(path)
    if not source.is_file():
        raise InputValueError(message("`model` of reluscope slice", "an existing model file",
                                      f"{str(source)!r}, which does not exist", "Check the path."))
    if source.with_suffix(".json").is_file():
        from reluscope.train.loop import load_checkpoint

        _, objective, _ = load_checkpoint(source)
        model = objective.trained_network() if network == "full" else objective.backbone
        return model.eval()
    kind = archive_kind(source)
    if kind == "torchscript":
        raise InputValueError(message(
            "`model` of reluscope slice",
            "a reluscope checkpoint, a torch.export program or a pickled module",
            f"{str(source)!r}, a TorchScript archive (its forward runs inside TorchScript, where "
            "reluscope cannot see the ReLU calls)",
            "Export the original module instead: torch.export.save(torch.export.export(model, (x,), "
            "dynamic_shapes=({0: torch.export.Dim('batch')},)), 'model.pt2'), and pass --allow-pickle."))
    if kind == "export":
        return _load_exported(source, allow_pickle)
    if not allow_pickle:
        try:
            content = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise InputValueError(message(
                "`model` of reluscope slice",
                "a reluscope checkpoint, or --allow-pickle for a pickled module",
                f"{str(source)!r}, which holds pickled Python objects (loading them runs code from the file)",
                "Pass --allow-pickle only if you trust the file, or slice a reluscope checkpoint.")) from exc
        except Exception as exc:
            raise InputValueError(message(
                "`model` of reluscope slice", "a file written by torch.save",
                f"{str(source)!r}, which torch.load could not read ({type(exc).__name__})",
                "Check that the file is complete.")) from exc
        raise InputValueError(message(
            "`model` of reluscope slice", "a model with its architecture",
            f"a file holding {type(content).__name__} (weights only)",
            "A state_dict has no architecture: save the module itself with torch.save(model, path) and pass "
            "--allow-pickle, or slice a reluscope checkpoint (step_*.pt beside its .json)."))
    warnings.warn(f"unpickling {source}: this runs code from the file (--allow-pickle)", stacklevel=2)
    try:
        model = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputValueError(message(
            "`model` of reluscope slice", "a file written by torch.save(model, path)",
            f"{str(source)!r}, which torch.load could not read ({type(exc).__name__}: {exc})",
            "Save the whole module (not only its state_dict), from code this process can import."
        )) from exc
    if not isinstance(model, nn.Module):
        raise InputValueError(message(
            "`model` of reluscope slice", "a saved torch.nn.Module",
            f"a file holding {type(model).__name__}",
            "A state_dict has no architecture: save the module itself with torch.save(model, path)."))
    return model.eval()


def archive_kind(path: Path) -> str | None:
    """``"export"`` for a ``torch.export.save`` archive, ``"torchscript"`` for a
    ``torch.jit.save`` one, None for anything else (read from the zip's table of contents,
    nothing is executed)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    leaves = {name.split("/", 1)[-1] for name in names}
    if "archive_format" in leaves:
        return "export"
    if "constants.pkl" in leaves or any(leaf.startswith("code/") for leaf in leaves):
        return "torchscript"
    return None


def _load_exported(source: Path, allow_pickle: bool) -> nn.Module:
    """The module of a ``torch.export`` program (its graph, fixed in the mode it was exported in)."""
    import torch

    if not allow_pickle:
        # torch.export.load unpickles (weights_only=False) the tensors a program marks as pickled
        raise InputValueError(message(
            "`model` of reluscope slice", "--allow-pickle for a torch.export program",
            f"{str(source)!r}, a torch.export archive (loading one may unpickle objects, which runs "
            "code from the file)",
            "Pass --allow-pickle only if you trust the file, or slice a reluscope checkpoint."))
    warnings.warn(f"loading the torch.export program {source}: this may unpickle code from the file "
                  "(--allow-pickle)", stacklevel=3)
    try:
        program = torch.export.load(str(source))
    except Exception as exc:
        raise InputValueError(message(
            "`model` of reluscope slice", "a complete torch.export.save archive",
            f"{str(source)!r}, which torch.export.load could not read ({type(exc).__name__}: {exc})",
            "Export it again with torch.export.save.")) from exc
    return program.module()  # eval() is not supported on exported modules: the mode is baked in


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,28,28' -> (1, 28, 28), with a clear error."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape) or math.prod(shape) != 784:
        raise InputValueError(message("`--input-shape` of reluscope slice",
                                      "positive integers with product 784 (a 28x28 image)", repr(text),
                                      "Pass 1,28,28 for CNNs or 784 for MLPs that take flat vectors."))
    return shape


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Compute and write everything; returns the metrics written to metrics.json."""
    import torch

    from reluscope.data import load_idx_images

    apply_allow_imports(args)
    out = Path(args.out)
    model = load_model(args.model, network=args.network, allow_pickle=args.allow_pickle)
    shape = parse_shape(args.input_shape)
    images, labels = load_idx_images(args.dataset, args.split, args.data)
    for i in args.indices:
        if not 0 <= i < len(images):
            raise InputValueError(message("`--indices` of reluscope slice",
                                          f"image indices in [0, {len(images)})", repr(args.indices),
                                          f"The {args.dataset} {args.split} split has {len(images)} images."))
    pics = torch.from_numpy(images[list(args.indices)]).double()
    x = pics.reshape(3, *shape)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=args.margin)
    anchors = plane.coordinates(x).numpy()

    start = time.perf_counter()
    part = rs.slice_regions(model, plane, max_regions=args.max_regions)
    slice_seconds = time.perf_counter() - start
    boundary = None
    start = time.perf_counter()
    outputs = rs.metrics.vertex_outputs(part, model)
    if outputs.shape[1] >= 2:
        boundary = rs.metrics.decision_boundary(part, model, outputs=outputs)
    summary = rs.metrics.summary(part, anchors=anchors, decision=boundary)
    metric_seconds = time.perf_counter() - start
    start = time.perf_counter()
    path = rs.path_regions(model, rs.Path.segment(x[0], x[1]))
    path_seconds = time.perf_counter() - start
    with torch.no_grad():
        predicted = model(x.float() if _is_float32(model) else x).argmax(1).tolist()

    _plot(part, path, boundary, anchors, pics.numpy(), args, labels, predicted, out)
    part.save(out / "partition.npz")
    path.save(out / "path.npz")
    result = {
        "model": str(args.model), "dataset": args.dataset, "split": args.split,
        "indices": list(args.indices), "labels": [int(labels[i]) for i in args.indices],
        "predicted": predicted, "slice": summary, "path": rs.metrics.path_summary(path),
        "seconds": {"slice": round(slice_seconds, 3), "metrics": round(metric_seconds, 3),
                    "path": round(path_seconds, 3)},
    }
    write_json(out / "metrics.json", result)
    print(f"{part.n_regions:,} regions on the plane (slice {slice_seconds:.2f}s); "
          f"{int(path.region_counts()[0]):,} along the segment {args.indices[0]} -> {args.indices[1]}")
    print(f"wrote {out / 'partition.png'} (zoomable: {out / 'partition_zoom.html'}), "
          f"{out / 'path_profile.png'} and {out / 'metrics.json'}")
    return result


def _is_float32(model: nn.Module) -> bool:
    import torch

    return any(p.dtype == torch.float32 for p in model.parameters())


def _plot(part: rs.Partition2D, path: rs.Partition1D, boundary: Any, anchors: np.ndarray,
          pics: np.ndarray, args: argparse.Namespace, labels: np.ndarray, predicted: list[int],
          out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reluscope.plotting import plot_partition, plot_path_profile
    from reluscope.plotting.zoom import write_zoom_page

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 7.5))
    plot_partition(part, ax, color_by=args.color_by, anchors=anchors, decision=boundary,
                   anchor_images=pics)
    names = ", ".join(f"#{i} ({int(labels[i])}->{p})" for i, p in zip(args.indices, predicted, strict=True))
    ax.set_title(f"{part.n_regions:,} linear regions; {args.dataset} {args.split} {names}\n"
                 "image (label->prediction); black line: decision boundary", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "partition.png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    write_zoom_page(part, out / "partition_zoom.html", f"{args.model}: {args.dataset} {args.split} {names}")
    fig, ax = plt.subplots(figsize=(9, 4))
    classes = DATASETS[args.dataset].classes if args.dataset in DATASETS else None
    plot_path_profile(path, 0, ax, class_names=classes if path.output_start.shape[1] == 10 else None)
    ax.set_title(f"{int(path.region_counts()[0]):,} linear regions from image #{args.indices[0]} "
                 f"to #{args.indices[1]} ({args.dataset} {args.split})")
    fig.tight_layout()
    fig.savefig(out / "path_profile.png", dpi=150)
    fig.savefig(out / "path_profile.svg")
    plt.close(fig)
