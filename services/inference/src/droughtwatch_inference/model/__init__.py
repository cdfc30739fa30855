"""The model: its contract (manifest.py, model.json), the input layout it declares (layout.py),
what loaded weights offer (predictor.py) and whether they fit their model.json (fit.py).
Pure code over manifests, shapes and arrays: the Inference loader (adapters.models) and the
tools' `model check` and `model publish` use it; it imports neither torch nor onnxruntime."""
