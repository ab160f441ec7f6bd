"""One artifact behind the protocol: its ``Predictor`` in a thread of its own, its metadata, and the
same input validation as the CLI (shape, decodable images, the pixel limit)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import ImageError, VitdeployError
from .config import ModelSpec, ServeOptions
from .protocol import (
    InferRequest,
    ProtocolError,
    RequestedOutput,
    RequestInput,
    ResponseOutput,
    classification,
)

TENSOR_INPUT, IMAGE_INPUT = "x", "image"
VERSION = "1"
# Triton's platform names where one exists, so tools that read them recognise the runtime
PLATFORMS = {"paddle": "paddle_inference", "onnxruntime": "onnxruntime_onnx",
             "openvino": "openvino", "lite": "paddle_lite"}


@dataclass
class Prepared:
    """A request checked against the model: what the batcher runs and how to answer."""

    kind: str  # TENSOR_INPUT or IMAGE_INPUT
    rows: int
    tensor: np.ndarray | None  # [N, 3, S, S] float32 (images: filled by ``preprocess``)
    images: list[bytes]
    outputs: list[RequestedOutput]


class ServedModel:
    """The runtime is created in its worker thread and only ever runs there: none of the runtimes
    is async, and Paddle's oneDNN keeps per-thread caches."""

    def __init__(self, spec: ModelSpec, options: ServeOptions) -> None:
        from ..predictor import Predictor

        self.spec, self.name, self.options = spec, spec.name, options
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"vitdeploy-{spec.name}")

        def load() -> tuple[Predictor, int]:
            pred = Predictor(spec.directory, runtime=spec.runtime, precision=spec.precision,
                             threads=spec.threads, model=spec.model, verify=spec.verify)
            size = pred.input_size
            try:  # a first run: kernel selection and allocations happen now, not on a request
                classes = pred.predict_batch(np.zeros((1, 3, size, size), np.float32)).shape[1]
            except BaseException:
                pred.close()
                raise
            return pred, int(classes)

        try:
            self.predictor, self.num_classes = self.executor.submit(load).result()
        except BaseException:
            self.executor.shutdown(wait=False)
            raise
        info = self.predictor.info
        self.size = info.preprocess.crop_size
        self.labels = info.labels
        self.output_names = ("probs",) if info.softmax else ("logits", "probs")

    # -- metadata ---------------------------------------------------------------------------
    def metadata(self) -> dict:
        rt, s, c = self.predictor.runtime, self.size, self.num_classes
        return {
            "name": self.name, "versions": [VERSION], "platform": PLATFORMS.get(rt.name, rt.name),
            "inputs": [{"name": TENSOR_INPUT, "datatype": "FP32", "shape": [-1, 3, s, s]},
                       {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": n, "datatype": "FP32", "shape": [-1, c]} for n in self.output_names],
            "parameters": {
                "artifact": self.spec.directory, "model": self.predictor.info.manifest.get("model"),
                "runtime": rt.name + (f" ({rt.detail})" if rt.detail else ""),
                "artifact_precision": rt.artifact_precision, "compute_precision": rt.compute_precision,
                "labels": len(self.labels), "max_batch_size": self.options.max_batch_size,
                "max_queue_delay_ms": self.options.max_queue_delay_ms,
            },
        }

    def config(self) -> dict:
        """Triton's model configuration, for tools that read it (perf_analyzer, dashboards)."""
        s, c = self.size, self.num_classes
        label_file = {"label_filename": "labels.txt"} if self.labels else {}
        return {
            "name": self.name, "platform": self.metadata()["platform"],
            "max_batch_size": self.options.max_batch_size,
            "input": [{"name": TENSOR_INPUT, "data_type": "TYPE_FP32", "dims": [3, s, s]},
                      {"name": IMAGE_INPUT, "data_type": "TYPE_STRING", "dims": [1]}],
            "output": [{"name": n, "data_type": "TYPE_FP32", "dims": [c], **label_file}
                       for n in self.output_names],
            "dynamic_batching": {"max_queue_delay_microseconds":
                                 int(self.options.max_queue_delay_ms * 1000)},
        }

    # -- requests ---------------------------------------------------------------------------
    def _takes(self) -> str:
        s = self.size
        return (f"model '{self.name}' takes '{TENSOR_INPUT}' (FP32 [N, 3, {s}, {s}], preprocessed) "
                f"or '{IMAGE_INPUT}' (BYTES [N], encoded images)")

    def prepare(self, req: InferRequest) -> Prepared:
        """Check the request (cheap: runs on the event loop); images are decoded by ``preprocess``."""
        if len(req.inputs) != 1:
            raise ProtocolError(f"send one input, not {len(req.inputs)}; {self._takes()}")
        inp = req.inputs[0]
        if inp.name == TENSOR_INPUT:
            tensor = self._tensor(inp)
            prepared = Prepared(TENSOR_INPUT, tensor.shape[0], tensor, [], [])
        elif inp.name == IMAGE_INPUT:
            if inp.datatype != "BYTES" or not (len(inp.shape) == 1 or inp.shape[1:] == [1]):
                raise ProtocolError(f"input '{IMAGE_INPUT}' is {inp.datatype} {inp.shape}; "
                                    f"{self._takes()}")
            if not inp.data:
                raise ProtocolError(f"input '{IMAGE_INPUT}' holds no image")
            prepared = Prepared(IMAGE_INPUT, len(inp.data), None, list(inp.data), [])  # type: ignore[arg-type]
        else:
            raise ProtocolError(f"unknown input '{inp.name}'; {self._takes()}")
        prepared.outputs = self._outputs(req)
        return prepared

    def _tensor(self, inp: RequestInput) -> np.ndarray:
        s, shape = self.size, inp.shape
        if inp.datatype != "FP32" or len(shape) != 4 or shape[1:] != [3, s, s] or shape[0] < 1:
            raise ProtocolError(f"input '{TENSOR_INPUT}' is {inp.datatype} {shape}; {self._takes()}")
        tensor = inp.data
        assert isinstance(tensor, np.ndarray)
        if not np.isfinite(tensor).all():  # NaN logits could not even be written as JSON
            raise ProtocolError(f"input '{TENSOR_INPUT}' holds NaN or infinity")
        return tensor

    def _outputs(self, req: InferRequest) -> list[RequestedOutput]:
        if req.outputs is None:
            return [RequestedOutput(n, req.binary_default) for n in self.output_names]
        for o in req.outputs:
            if o.name not in self.output_names:
                raise ProtocolError(f"unknown output '{o.name}'; model '{self.name}' outputs: "
                                    f"{', '.join(self.output_names)}")
        return req.outputs

    def preprocess(self, prepared: Prepared) -> None:
        """Decode and preprocess the images with the artifact's own inference.yml (in a thread)."""
        from ..preprocess import decode_image_bytes, preprocess_array

        if prepared.kind != IMAGE_INPUT:
            return
        cfg, limit = self.predictor.info.preprocess, self.options.max_image_pixels
        rows = []
        for i, data in enumerate(prepared.images):
            try:
                rows.append(preprocess_array(decode_image_bytes(data, f"image[{i}]", limit), cfg))
            except ImageError as e:
                raise ProtocolError(str(e)) from None
            except VitdeployError as e:  # e.g. a bad $VITDEPLOY_MAX_IMAGE_PIXELS
                raise ProtocolError(str(e), 500) from None
        prepared.tensor = np.stack(rows)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model on a batch; called in the worker thread only."""
        return self.predictor.predict_batch(batch)

    def respond(self, prepared: Prepared, out: np.ndarray) -> list[ResponseOutput]:
        """The requested outputs for this request's rows of the batch output."""
        scores = self.predictor.scores(out)
        values = {"logits": out, "probs": scores}
        result = []
        for o in prepared.outputs:
            data = values[o.name]
            if o.classification:
                k = min(o.classification, data.shape[1])
                result.append(ResponseOutput(o.name, "BYTES", [data.shape[0], k],
                                             classification(data, k, self.labels), o.binary))
            else:
                result.append(ResponseOutput(o.name, "FP32", list(data.shape),
                                             np.asarray(data, np.float32), o.binary))
        return result

    def close(self) -> None:
        try:
            self.executor.submit(self.predictor.close).result(timeout=30)
        finally:
            self.executor.shutdown(wait=False)
