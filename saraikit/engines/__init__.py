"""engines: how a model is loaded and run.

Session configs for ONNX Runtime, llama.cpp and CTranslate2; the pipeline
stages (VAD, STT, LLM, TTS), the Whisper encoder exported to ONNX, and the
end-to-end pipeline worker.

May import: saraikit.core, saraikit.data, saraikit.models.
"""
