"""PaddleClas's own model definitions, imported from its PyPI wheel, as the test oracle.

Only the three model-zoo files are imported; their package parents are stubbed so that the rest
of PaddleClas (and its dependencies) is never loaded. Nothing from the wheel ships in vitdeploy.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

PADDLECLAS_VERSION = "2.6.0"
CACHE = Path(os.environ.get("VITDEPLOY_TEST_CACHE", Path(__file__).resolve().parents[1] / ".cache"))
_ZOO = "paddleclas/ppcls/arch/backbone/model_zoo/"
_FILES = ("vision_transformer.py", "distilled_vision_transformer.py", "levit.py")


def _wheel() -> Path:
    wheels = CACHE / "wheels"
    found = sorted(wheels.glob(f"paddleclas-{PADDLECLAS_VERSION}-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d",
                        str(wheels), f"paddleclas=={PADDLECLAS_VERSION}"], check=True)
        found = sorted(wheels.glob(f"paddleclas-{PADDLECLAS_VERSION}-*.whl"))
    return found[0]


def model_zoo_dir() -> Path:
    dest = CACHE / f"paddleclas-{PADDLECLAS_VERSION}" / "model_zoo"
    if not all((dest / f).exists() for f in _FILES):
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(_wheel()) as zf:
            for f in _FILES:
                (dest / f).write_bytes(zf.read(_ZOO + f))
    return dest


def _stub(name: str, path: Path | None = None) -> types.ModuleType:
    mod = sys.modules.get(name) or types.ModuleType(name)
    mod.__path__ = [str(path)] if path else []
    sys.modules[name] = mod
    return mod


def oracle_module(name: str):
    """``name`` is one of vision_transformer, distilled_vision_transformer, levit."""
    zoo = model_zoo_dir()
    for pkg in ("ppcls", "ppcls.utils", "ppcls.arch", "ppcls.arch.backbone"):
        _stub(pkg)
    _stub("ppcls.arch.backbone.model_zoo", zoo)
    save_load = types.ModuleType("ppcls.utils.save_load")
    save_load.load_dygraph_pretrain = lambda *a, **k: None
    sys.modules["ppcls.utils.save_load"] = save_load
    return importlib.import_module(f"ppcls.arch.backbone.model_zoo.{name}")


def oracle_factory(model_name: str):
    """PaddleClas's factory function for a seed model name."""
    for mod in ("vision_transformer", "distilled_vision_transformer", "levit"):
        m = oracle_module(mod)
        if model_name in getattr(m, "__all__", []):
            return getattr(m, model_name)
    raise KeyError(model_name)


def deploy_preprocess_module():
    """PaddleClas's deploy/python/preprocess.py (the Python predictor's transforms)."""
    path = model_zoo_dir().parent / "deploy_preprocess.py"
    if not path.exists():
        with zipfile.ZipFile(_wheel()) as zf:
            path.write_bytes(zf.read("paddleclas/deploy/python/preprocess.py"))
    six = types.ModuleType("six")
    six.PY2 = False
    sys.modules.setdefault("six", six)
    det = types.ModuleType("paddleclas.deploy.python.det_preprocess")
    for name in ("DetNormalizeImage", "DetPadStride", "DetPermute", "DetResize"):
        setattr(det, name, object)
    for pkg in ("paddleclas", "paddleclas.deploy", "paddleclas.deploy.python"):
        _stub(pkg)
    sys.modules["paddleclas.deploy.python.det_preprocess"] = det
    spec = importlib.util.spec_from_file_location("paddleclas_deploy_preprocess", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
