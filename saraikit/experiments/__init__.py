"""experiments: what is measured, each from a config to a result object.

Benchmarks of ONNX models (synthetic or real inputs), grid search, cold start,
side-by-side comparison, INT8 quantization, the LLM latency protocol and the
end-to-end runs. Experiments return results; they do not write KPIs.

May import: saraikit.core, saraikit.data, saraikit.models, saraikit.engines, saraikit.quality.
"""
