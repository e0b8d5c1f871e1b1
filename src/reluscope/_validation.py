"""One validation helper and one error template for the whole library."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from reluscope.errors import InputTypeError, InputValueError

if TYPE_CHECKING:  # torch is imported where tensors are made (the command line stays light)
    import torch


def message(where: str, expected: str, received: str, fix: str) -> str:
    """Format an error message: what was expected, what was received, how to fix it.

    Parameters
    ----------
    where : str
        The argument and function, e.g. "`plane` of slice_regions".
    expected, received, fix : str
        The three parts of the message.
    """
    return f"{where} must be {expected}; got {received}. {fix}"


def describe(value: Any) -> str:
    """Short description of a value for error messages (type, shape, dtype)."""
    torch_module = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch_module is not None and isinstance(value, torch_module.Tensor):
        return f"a torch.Tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def as_float64_tensor(
    value: Any, where: str, device: torch.device | str | None = None
) -> torch.Tensor:
    """Convert an array-like of real numbers to a float64 tensor, or raise a clear error.

    Parameters
    ----------
    value : array-like
        Numbers (torch tensor, numpy array, nested sequences).
    where : str
        Name of the argument for the error message.
    device : torch.device, optional
        Device of the result; defaults to the device of `value` (CPU for non-tensors).

    Returns
    -------
    torch.Tensor
        float64 tensor, same shape as `value`.
    """
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise InputTypeError(
                message(where, "an array of real numbers", describe(value),
                        "Pass a torch.Tensor or numpy array.")
            ) from exc
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise InputTypeError(
                message(where, "an array of real numbers", describe(value),
                        "Pass a torch.Tensor or numpy array of floats.")
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex():
        raise InputTypeError(
            message(where, "real-valued", describe(value), "Pass the real part explicitly.")
        )
    tensor = tensor.to(dtype=torch.float64, device=device if device is not None else tensor.device)
    if not bool(torch.isfinite(tensor).all()):
        raise InputValueError(
            message(where, "finite (no NaN or inf)", describe(value) + " with non-finite entries",
                    "Remove or replace the NaN/inf entries.")
        )
    return tensor


#: Largest coordinate magnitude the geometry accepts: squares (areas, second moments) and
#: network values of points this far out stay finite and resolvable in float64.
MAX_MAGNITUDE = 1e100


def check_magnitude(value: float, where: str) -> None:
    """Refuse a scale (largest |coordinate|, or a domain's half-width) float64 cannot resolve."""
    if not value <= MAX_MAGNITUDE:
        raise InputValueError(message(where, f"coordinates of magnitude at most {MAX_MAGNITUDE:.0e}",
                                      f"a scale of {value:.3g}",
                                      "Rescale the inputs or use a smaller margin or domain: areas and "
                                      "network values this large overflow float64."))


def check_interval_pair(value: Any, where: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Validate an extent ``((s_min, s_max), (t_min, t_max))`` with positive widths."""
    try:
        (s0, s1), (t0, t1) = value
        pairs = ((float(s0), float(s1)), (float(t0), float(t1)))
    except (TypeError, ValueError) as exc:
        raise InputValueError(
            message(where, "a pair of intervals ((s_min, s_max), (t_min, t_max))",
                    describe(value), "Pass e.g. ((-1.0, 1.0), (-1.0, 1.0)).")
        ) from exc
    for lo, hi in pairs:
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise InputValueError(
                message(where, "two intervals with finite bounds and min < max",
                        repr(value), "Order each interval as (min, max) with max > min.")
            )
    return pairs


def check_positive(value: Any, where: str) -> float:
    """Validate a positive finite real number."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(message(where, "a positive number", describe(value),
                                     "Pass a float > 0.")) from exc
    if not (np.isfinite(number) and number > 0):
        raise InputValueError(message(where, "a positive finite number", repr(value),
                                      "Pass a float > 0."))
    return number


def check_int(value: Any, where: str, *, low: int = 1, high: int | None = None, example: Any = None) -> int:
    """Validate an integer in ``[low, high]`` (bools are not integers here); returns it as int.

    `example` goes into the fix ("Pass e.g. ..."); by default it is `low`.
    """
    if high is None:
        expected = "a positive integer" if low == 1 else f"an integer >= {low}"
    else:
        expected = f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low \
            or (high is not None and value > high):
        raise InputValueError(message(where, expected, repr(value),
                                      f"Pass e.g. {low if example is None else example}."))
    return int(value)



def check_device(device: Any, where: str) -> torch.device:
    """`device` as a ``torch.device`` this process can put tensors on, or a clear error.

    Catches the two cases torch reports from deep inside: a name it does not parse, and a
    CUDA device asked of a build without CUDA (or a machine without a visible GPU).
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputValueError(message(where, "a torch device such as 'cpu' or 'cuda:0'", describe(device),
                                      "Pass 'cpu', 'cuda' or 'cuda:N'.")) from exc
    if parsed.type == "cuda":
        if torch.version.cuda is None:
            raise InputValueError(message(
                where, "a device this torch build supports", f"{str(parsed)!r} with a CPU-only torch "
                f"({torch.__version__})",
                "Use 'cpu', or install a CUDA build of torch on a machine with a GPU."))
        count = torch.cuda.device_count()
        if (parsed.index or 0) >= count:
            raise InputValueError(message(
                where, f"a visible GPU (this machine shows {count})", repr(str(parsed)),
                "Use 'cpu', or check CUDA_VISIBLE_DEVICES and the driver."))
    elif parsed.type == "meta":
        raise InputValueError(message(where, "a device holding values (CPU or CUDA)", "'meta' (shapes only)",
                                      "Use 'cpu' or 'cuda'."))
    return parsed
