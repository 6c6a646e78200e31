"""saraikit: measure local, CPU-only voice-assistant stacks honestly.

One concept per module:

- ``hardware``   hardware fingerprint and target slug
- ``sessions``   ONNX Runtime / llama.cpp / CTranslate2 options from plain configs
- ``stats``      summaries, percentile support, bootstrap intervals, comparisons
- ``timing``     measure a callable (warmup, min iterations + min duration), load/memory trackers
- ``trials``     run a trial in a fresh process with a timeout
- ``store``      the SQLite results database
- ``models``     provisioning of the default models from installed packages, the manifest
- ``inspect``    inventory details of ONNX / GGUF / CTranslate2 models, stack compatibility
- ``synthetic``  synthetic inputs generated from an ONNX input spec
- ``datasets``   real speech manifests (Debian packages, user manifests)
- ``audio``      reading and checking audio files
- ``bench``      generic model benchmarks built from the pieces above
- ``inventory``  the inventory tables of the 00 notebook
- ``stack``      stack configs (which model and settings each stage uses)
- ``whisper_onnx`` the Whisper encoder exported to ONNX from CTranslate2 weights, and its STT backend
- ``realinputs`` real inputs for ONNX models (mel features of real speech, phoneme ids of real sentences)
- ``quantize``   INT8 variants with onnxruntime.quantization, fidelity metrics
- ``grid``       grid search over session options (exhaustive, successive halving), best configs
- ``coldstart``  cold start versus steady state, warm-up break-even
- ``compare``    side-by-side comparison against a latency target (seed 004's scenarios)
- ``llm``        the LLM latency protocol (TTFT, llama-bench style pp/tg, sweeps)
- ``stages``     pipeline stage backends (VAD, STT, LLM, TTS) behind one interface
- ``sentences``  cutting streamed text at sentence boundaries
- ``pipeline``   the end-to-end pipeline in a worker process
- ``e2e``        end-to-end scenarios: utterance sets, summaries, thread budget
- ``textnorm``   text normalization before WER
- ``quality``    WER/CER with confidence intervals
- ``noise``      mixing noise at an exact SNR
- ``mos``        predicted MOS (DNSMOS)
- ``listening``  the human listening-test kit
- ``kpi``        the KPI ledger with provenance
- ``figures``    key plots saved for the report
- ``report``     outputs/index.html with regression flags
- ``browsercheck`` HTML reports checked in headless Chromium
- ``workbook``   running notebooks with papermill and exporting HTML
- ``cli``        the ``saraikit`` command line
"""

__version__ = "0.1.0"
