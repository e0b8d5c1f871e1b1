"""Backbones of the user's own: ``"package.module:factory"`` in a config or on the command line.

Importing a module runs its code, so a config that names one is only honoured after an
explicit opt-in: the ``--allow-imports`` flag of ``reluscope run`` / ``train`` / ``slice``
(which sets ``RELUSCOPE_ALLOW_IMPORTS=1`` for the process and its workers), or that
variable set by the caller. The factory is called with the run's ``backbone_options``
(and ``width`` / ``depth`` when its signature takes them) and must return an
``nn.Module`` mapping images ``(B, 1, 28, 28)`` to features ``(B, d)``; ``d`` is its
``feature_dim`` attribute, or read from one forward pass.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from typing import Any

import torch
from torch import nn

from reluscope._validation import describe, message
from reluscope.errors import InputValueError

#: ``package.module:attribute`` (dotted identifiers on both sides).
IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
#: Environment variable that allows importing backbones named in configs.
ALLOW_IMPORTS = "RELUSCOPE_ALLOW_IMPORTS"


def is_import_path(kind: str) -> bool:
    """Whether a backbone name is a ``package.module:factory`` path (not a built-in)."""
    return isinstance(kind, str) and IMPORT_PATH.match(kind) is not None


def import_factory(path: str, where: str) -> Any:
    """The callable named by ``package.module:attribute``, imported only when imports are
    allowed (``--allow-imports`` / ``RELUSCOPE_ALLOW_IMPORTS=1``); `where` names what asked
    for it in the errors."""
    if os.environ.get(ALLOW_IMPORTS) != "1":
        raise InputValueError(message(
            where, "allowed to be imported (importing a module runs its code)", "imports not allowed",
            f"Pass --allow-imports to the command (or set {ALLOW_IMPORTS}=1) if you trust the module."))
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputValueError(message(where, "an importable module", f"{type(exc).__name__}: {exc}",
                                      "Install the package or add its folder to PYTHONPATH.")) from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise InputValueError(message(where, f"a callable `{attribute}` in module `{module_name}`",
                                      describe(factory), "Name a function or class of that module."))
    return factory


def custom_backbone(path: str, width: int, depth: int, options: dict[str, Any] | None = None,
                    input_shape: tuple[int, ...] = (1, 28, 28)) -> nn.Module:
    """Build the backbone named by `path` (see the module docstring).

    Raises
    ------
    InputValueError
        If imports are not allowed, the module or factory is missing, or the factory does
        not return a module giving (B, d) features.
    """
    where = f"the backbone {path!r}"
    factory = import_factory(path, where)
    kwargs = dict(options or {})
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    for name, value in (("width", width), ("depth", depth)):
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    backbone = factory(**kwargs)
    if not isinstance(backbone, nn.Module):
        raise InputValueError(message(where, "a factory returning a torch.nn.Module", describe(backbone),
                                      "Return the network itself."))
    if not isinstance(getattr(backbone, "feature_dim", None), int):
        with torch.no_grad():
            out = backbone.eval()(torch.zeros(2, *input_shape))
        backbone.train()
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise InputValueError(message(where, "features shaped (batch, d) for images (batch, 1, 28, 28)",
                                          describe(out), "Flatten the backbone's output."))
        backbone.feature_dim = int(out.shape[1])  # type: ignore[assignment]
    return backbone
