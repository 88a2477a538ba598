"""Deployment of a trained subnet: int8 TFLite + float ONNX, verified, as C for TFLM.

    from tinynas.deploy.pipeline import export_subnet
    report = export_subnet(arch, state_dict, bundle, "out/", io="int8", target="cmake")

Modules: `tflite_export` (weights check, calibration data, Keras mirror,
conversion, op checks), `onnx_export` (ONNX + onnxruntime parity), `verify`
(accuracy, TFLM vs LiteRT, arena), `pipeline` (the staged export).
Importing this package is free: it re-exports nothing, so `tinynas profile`, which
needs only `footprint`, does not load torch through `pipeline`.
"""
