"""Safe checkpoint loading: read a ``.pdparams`` pickle without executing anything from it.

``paddle.load`` is ``pickle.load``: a crafted file can run arbitrary code. A state dict written
by ``paddle.save`` only needs containers and numpy arrays, so the unpickler below admits exactly
those globals and refuses everything else before it is called.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError, UnsafeCheckpointError

# (module, name) pairs that paddle.save / numpy pickling emits for a state dict.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # protocol-2 pickles encode bytes through it
    ("builtins", "tuple"),  # nested dicts: paddle.save stores a tensor as tuple((name, ndarray))
}
_WRAPPERS = ("state_dict", "model", "model_state_dict", "net")
_PREFIXES = ("backbone.", "module.", "model.")
_META_KEYS = ("StructuredToParameterName@@",)


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            if module.startswith("numpy._core"):  # written by numpy 2, read by numpy 1 (Lite env)
                try:
                    return super().find_class(module, name)
                except ModuleNotFoundError:
                    module = module.replace("numpy._core", "numpy.core", 1)
            return super().find_class(module, name)
        raise UnsafeCheckpointError(
            f"refusing checkpoint {self._path}: it asks to import '{module}.{name}', which a "
            "paddle.save state dict never needs (nothing from the file was run); re-save it "
            "with paddle.save(model.state_dict(), path) from a trusted environment"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(
            f"refusing checkpoint {self._path}: it uses pickle persistent ids, which paddle.save "
            "state dicts never contain"
        )


def safe_load(path: str | Path) -> dict[str, np.ndarray]:
    """Read a paddle.save state dict; returns flat ``{key: ndarray}`` (wrappers removed)."""
    p = Path(path)
    if not p.exists() and p.with_name(p.name + ".pdparams").exists():
        p = p.with_name(p.name + ".pdparams")  # PASSL passes checkpoint paths without suffix
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p} (pass the .pdparams file with --weights)")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {p}: {e.strerror}") from None
    try:
        obj = _SafeUnpickler(data, p).load()
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # truncated, not a pickle, wrong protocol ...
        raise CheckpointError(
            f"cannot read checkpoint {p}: not a complete paddle.save state dict "
            f"({type(e).__name__}: {e}); is the file truncated?"
        ) from None
    return _normalize(obj, p)


def _normalize(obj: Any, path: Path) -> dict[str, np.ndarray]:
    for _ in range(2):  # {'state_dict': {...}} and {'model': {'state_dict': ...}}
        if isinstance(obj, dict):
            inner = [obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)]
            if inner and not any(isinstance(v, np.ndarray) for v in obj.values()):
                obj = inner[0]
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if key in _META_KEYS:
            continue
        if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
                and isinstance(value[1], np.ndarray)):
            value = value[1]  # (parameter name, array): a tensor saved inside a nested dict
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise CheckpointError(
                f"checkpoint {path} entry {key!r} is a {type(value).__name__}, not an array; "
                "expected a flat state dict of parameters"
            )
        if value.dtype == object:
            raise CheckpointError(f"checkpoint {path} entry {key!r} is an object array")
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    if not out:
        raise CheckpointError(f"checkpoint {path} holds no parameters")
    return out


def to_dtype(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast a stored array to the model's dtype; fp16 (PASSL O2) and bf16 (stored as uint16)."""
    if value.dtype == dtype:
        return value
    if value.dtype == np.uint16 and dtype.kind == "f":  # paddle stores bfloat16 as raw uint16
        return (value.astype(np.uint32) << 16).view(np.float32).astype(dtype)
    return value.astype(dtype)


@dataclass
class FitReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    misshaped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def summary(self, limit: int = 4) -> str:
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("mis-shaped", self.misshaped)):
            if items:
                more = f", +{len(items) - limit} more" if len(items) > limit else ""
                parts.append(f"{len(items)} {label} ({', '.join(items[:limit])}{more})")
        return "; ".join(parts)


# Buffers the model derives itself; a checkpoint may omit them, but if present they must agree.
DERIVED_BUFFERS = ("attention_bias_idxs",)


def check_fit(expected: dict[str, tuple[tuple[int, ...], np.dtype]],
              state: dict[str, np.ndarray]) -> FitReport:
    """Compare a checkpoint with the model's own state dict (key -> (shape, dtype))."""
    rep = FitReport()
    for key, (shape, _) in expected.items():
        if key not in state:
            if not key.endswith(DERIVED_BUFFERS):
                rep.missing.append(key)
        elif tuple(state[key].shape) != tuple(shape):
            rep.misshaped.append(f"{key}: checkpoint {list(state[key].shape)} vs model {list(shape)}")
    rep.unexpected = [k for k in state if k not in expected]
    return rep
