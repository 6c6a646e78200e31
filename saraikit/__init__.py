"""saraikit: measure local, CPU-only voice-assistant stacks honestly.

Subpackages, lowest layer first; each imports only the ones before it
(``tests/test_layout.py`` checks this):

- ``core``         errors, paths, hardware fingerprint, statistics, verdicts, timing, trials, results store, I/O
- ``data``         audio, datasets, noise, text normalization, sentences, prompts
- ``models``       provisioning and the manifest, one reader per model format, inventory, stacks
- ``engines``      session configs and the stage engines (VAD, STT, LLM, TTS), the pipeline worker
- ``quality``      WER/CER, predicted MOS, the listening kit, STT and TTS quality runs
- ``experiments``  benchmarks, grid search, cold start, comparisons, quantization, LLM protocol, end to end
- ``report``       KPI ledger and verdicts, figures, the index page, the browser check, the workbook runner

``notebook`` (the one-line notebook setup) and ``cli`` (the ``saraikit`` command) sit on top.
"""

__version__ = "0.1.0"
