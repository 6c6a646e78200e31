"""engines: how a model is loaded and run.

Configs, builders and read-back for ONNX Runtime (ort), llama.cpp (llama) and
CTranslate2 (ct2); the pipeline stages (VAD, STT, LLM, TTS), the Whisper
encoder exported to ONNX and its INT8 recipes (``quant_variants``,
``quant_graph``: here, not in experiments, because the trimmed-window STT
stage makes its own INT8 encoder), and the end-to-end pipeline worker.

Modules here may import: saraikit.core, saraikit.data, saraikit.models.
"""
