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
- ``workbook``   running notebooks with papermill and exporting HTML
- ``cli``        the ``saraikit`` command line
"""

__version__ = "0.1.0"
