"""The same DeiT ONNX served by KServe's own Python ModelServer (its v2 protocol), for the library
comparison in benchmarks/serving.py (--kserve-python). Run with a Python that has kserve and
onnxruntime (not vitdeploy's environment: kserve pins its own FastAPI, protobuf, pandas and the
kubernetes client):

    /path/to/kserve-venv/bin/python benchmarks/kserve_model.py MODEL.onnx PORT

The ONNX Runtime session gets vitdeploy's settings (all graph optimisations, one intra-op thread
per physical core, sequential, spinning), so only the serving layer differs. KServe's Python server
has no in-process dynamic batching (KServe batches in a separate agent container on Kubernetes):
requests run one by one, like `vitdeploy serve --max-batch-size 1`.
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    sys.argv = sys.argv[:1]  # kserve parses the command line when imported
    import kserve
    import onnxruntime as ort
    from kserve import InferOutput, InferRequest, InferResponse

    class Deit(kserve.Model):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
            self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            self.session.run(None, {"x": np.zeros((1, 3, 224, 224), np.float32)})
            self.ready = True

        def predict(self, payload: InferRequest, headers=None) -> InferResponse:
            x = payload.inputs[0].as_numpy()
            y = self.session.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]
            out = InferOutput(name="logits", shape=list(y.shape), datatype="FP32")
            out.set_data_from_numpy(y, binary_data=True)
            return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=[out],
                                 use_binary_outputs=True)

    kserve.ModelServer(http_port=port, enable_grpc=False, workers=1).start([Deit("export")])


if __name__ == "__main__":
    main()
