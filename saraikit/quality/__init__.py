"""quality: what the user keeps.

WER/CER with confidence intervals, predicted MOS (DNSMOS), the human listening
kit, and the STT/TTS quality runs (``stt_eval``, ``tts_eval``) built on one
transcription path with one decoding policy (``transcribe``); what a quality
run shows and concludes (``tables``, ``figures``, ``summary``).

May import: saraikit.core, saraikit.data, saraikit.models, saraikit.engines.
"""
