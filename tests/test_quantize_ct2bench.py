"""CTranslate2's own INT8 Whisper encoder as the latency reference (integration)."""

from __future__ import annotations

import pytest

from saraikit.experiments.quantize.ct2bench import ct2_encoder_bench


@pytest.mark.integration
def test_ct2_encoder_bench_returns_what_bench_figures_needs(model_paths):
    from saraikit.core import stats
    from saraikit.experiments import bench, realinputs

    feed = realinputs.real_feeds("whisper-tiny.en", 1)[0]
    plan = {"warmup": 0, "min_iterations": 2, "min_duration_s": 0.0}
    raw = ct2_encoder_bench(model_paths["whisper-tiny.en"], feed, "int8", plan)
    assert len(raw["samples_ms"]) == 2 and all(s > 0 for s in raw["samples_ms"])
    assert raw["method"]["compute_type"] == "int8" and raw["input_shapes"] == {"mel": [1, 80, 3000]}
    metrics = {f.metric for f in bench.bench_figures(raw, stats.summarize(raw["samples_ms"]))}
    assert {"load_time", "latency_p50", "peak_rss"} <= metrics

