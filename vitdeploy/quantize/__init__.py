"""int8 recipes: a calibration reader shared by every recipe (calib.py), one module per runtime's
recipe (onnxruntime.py, openvino.py), and the accuracy-budget search (budget.py). A recipe never
knows the CLI; conversion targets call it."""
