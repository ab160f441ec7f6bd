"""``vitdeploy doctor``: what is installed, which versions, what is missing."""

from __future__ import annotations

import platform

from .about import __version__, package_version

_PACKAGES = (
    ("paddlepaddle", "Paddle Inference runtime and export", "pip install 'paddlepaddle==3.3.*'"),
    ("paddle2onnx", "convert --to onnx / openvino", "pip install 'paddle2onnx==2.1.*'"),
    ("onnx", "ONNX checker", "pip install onnx"),
    ("onnxslim", "ONNX graph cleaning", "pip install onnxslim"),
    ("onnxruntime", "runtime onnxruntime", "pip install onnxruntime"),
    ("openvino", "runtime openvino, convert --to openvino", "pip install openvino"),
    ("nncf", "convert --to openvino --quantize int8", "pip install nncf"),
    ("opencv-python-headless", "image decoding and resizing", "pip install opencv-python-headless"),
)


def diagnose() -> dict:
    rows = [{"name": "vitdeploy", "ok": True, "version": __version__,
             "notes": f"Python {platform.python_version()}"}]
    for pkg, what, fix in _PACKAGES:
        version = package_version(pkg)
        rows.append({"name": pkg, "ok": version is not None, "version": version,
                     "notes": what if version is not None else f"{what}; {fix}"})
    from .lite import env as lite_env

    st = lite_env.status()
    try:
        py, how = lite_env.find_python310()
        py_note = f"Python 3.10 at {py} (via {how})"
    except lite_env.LiteToolchainError as e:
        py_note = str(e)
    rows.append({"name": "lite toolchain", "ok": st.ready,
                 "version": ", ".join(f"{k} {v}" for k, v in st.versions.items()) or None,
                 "notes": f"{st.env}; " + (py_note if st.ready else f"{st.problem}; {py_note}")})
    from .lite import arm

    for abi in arm.ABIS.values():
        a = arm.status(abi.name)
        how = "native" if arm.native(abi) else abi.qemu
        rows.append({"name": f"lite ARM kernels ({abi.name})", "ok": True,
                     "version": (f"{arm.VERSION}, built in {a.build.get('seconds', 0) / 60:.0f} min"
                                 if a.build else None),
                     "notes": (f"{a.dir}; runs {', '.join(abi.nb_arches)} .nb files ({how})"
                               if a.ready else f"optional: {a.problem}")})
    from .runtimes import RUNTIMES

    return {"ok": all(r["ok"] for r in rows), "components": rows, "runtimes": list(RUNTIMES)}
