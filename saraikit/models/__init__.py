"""models: the model files themselves.

Provisioning from installed packages and the manifest (``catalog``), one reader
per format (``onnx_file``, ``gguf_file``, ``ct2_file``) behind ``inspect``,
inventory tables (``inventory``), stack files (``stack``) and the
stage-to-stage compatibility check (``compat``).

May import: saraikit.core, saraikit.data.
"""
