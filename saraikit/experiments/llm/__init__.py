"""llm: LLM latency on any GGUF model (llama-cpp-python), measured the way llama-bench does it.

- ``load``        loading a GGUF: wall time, llama.cpp's load time, memory before/after (also in a fresh process)
- ``generation``  one streamed answer per prompt: TTFT, token arrival times, decode speed
- ``throughput``  llama-bench ``pp``/``tg`` tests and the binding-vs-llama.cpp clock check
- ``sweeps``      thread-count and context-size sweeps, each configuration in a fresh process
- ``records``     results-store trials for all of the above
- ``analysis``    the figures the conclusions use: throughput table, best thread count, prompt-length fit
- ``summary``     notebook 04's sentences (markdown lines) and context plot, computed from the objects above

Prompts live in ``saraikit.data.prompts``, memory accounting in
``saraikit.core.memory``, llama.cpp's perf counters and a clean context in
``saraikit.engines.llama``.

Modules here may import: saraikit.core, saraikit.data, saraikit.models, saraikit.engines, saraikit.quality.
"""
