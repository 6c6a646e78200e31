"""INT8 variants of ONNX models with ``onnxruntime.quantization``: recipes, running, fidelity, judging.

Modules: ``variants`` (recipes), ``calibration`` (feeds checked against a
model), ``graph`` (facts read from an ONNX graph), ``staging`` (safe file
writes, ORT log capture), ``run`` (pre-processing and quantizing),
``fidelity`` (outputs against FP32), ``ct2bench`` (CTranslate2's own INT8 as
the reference for Whisper encoders), ``tasks`` (transcripts and WER of the
candidates), ``recommend`` (the accept / reject rule and its table rows).
"""
