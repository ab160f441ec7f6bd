"""Conversion back ends (ONNX, OpenVINO IR, Paddle Lite): see the open issues."""
