"""The quantization recipes, re-exported from :mod:`saraikit.engines.quant_variants` where they live.

Decision: the recipes moved down to the engines layer because an STT stage
(:mod:`saraikit.engines.whisper_trim`) makes INT8 encoder files itself, and
engines may not import experiments. This name stays because notebook 01
imports ``saraikit.experiments.quantize.variants``.
"""

from saraikit.engines.quant_variants import (  # noqa: F401 - re-exported names
    CALIBRATIONS,
    CONV_TYPES,
    HISTOGRAM_CALIBRATIONS,
    KNOWN_EXTRA_OPTIONS,
    METHODS,
    PIPER_DETERMINISTIC_SCALES,
    PIPER_KEEP_LENGTH,
    PIPER_LENGTH_PATH,
    QUANT_FORMATS,
    QUANT_TYPES,
    Variant,
    named_variants,
    standard_variants,
    variants_by_name,
)
