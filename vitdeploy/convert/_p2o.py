"""Run paddle2onnx in a child process: it can crash (segfault) on some programs, and a crash
must become one clear error line, not take the CLI down.

Usage: python -m vitdeploy.convert._p2o MODEL PARAMS OUT OPSET
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    model, params, out, opset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.environ.setdefault("GLOG_minloglevel", "2")
    import paddle2onnx

    try:
        paddle2onnx.export(model, params, out, opset_version=opset, auto_upgrade_opset=False,
                           enable_onnx_checker=True, enable_optimize=True)
    except SystemExit as e:  # paddle2onnx logs its error and calls sys.exit
        return int(e.code or 1) or 1
    return 0 if os.path.isfile(out) else 1


if __name__ == "__main__":
    sys.exit(main())
