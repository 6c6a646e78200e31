"""quality: what the user keeps.

WER/CER with confidence intervals, predicted MOS (DNSMOS), the human listening
kit, and the STT/TTS quality runs built on one transcription path.

May import: saraikit.core, saraikit.data, saraikit.models, saraikit.engines.
"""
