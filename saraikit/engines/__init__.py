"""engines: how a model is loaded and run.

Configs, builders and read-back for ONNX Runtime (ort), llama.cpp (llama) and
CTranslate2 (ct2); the pipeline stages (VAD, STT, LLM, TTS), the Whisper
encoder exported to ONNX, and the end-to-end pipeline worker.

Modules here may import: saraikit.core, saraikit.data, saraikit.models.
"""
