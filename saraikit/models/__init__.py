"""models: the model files themselves.

Provisioning from installed packages and the manifest (``catalog``), one reader
per format (ONNX, GGUF, CTranslate2), inventory tables, stack files and the
stage-to-stage compatibility check.

May import: saraikit.core, saraikit.data.
"""
