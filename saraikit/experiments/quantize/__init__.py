"""INT8 variants of ONNX models with ``onnxruntime.quantization``: recipes, running, fidelity, judging.

The recipes (``Variant``) and the graph facts live one layer down, in
:mod:`saraikit.engines.quant_variants` and :mod:`saraikit.engines.quant_graph`,
because an STT stage makes its INT8 encoder itself; ``variants`` here
re-exports the recipes for notebook 01.

Modules: ``variants`` (recipes, re-exported), ``calibration`` (feeds checked
against a model), ``staging`` (safe file writes, ORT log capture), ``run`` (pre-processing and quantizing),
``fidelity`` (outputs against FP32), ``ct2bench`` (CTranslate2's own INT8 as
the reference for Whisper encoders), ``tasks`` (transcripts and WER of the
candidates), ``measure`` (timing and WER of a model's candidates),
``table`` (the candidate table), ``recommend`` (the accept / reject rule and
its table rows), ``summary`` (summary table, conclusions, trade-off figure).
"""
