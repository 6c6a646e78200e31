"""Side-by-side comparison of two models against a latency target (seed 004).

Seed 004 decided between two models with three scenarios, on single runs and
P50 alone:

- A: the candidate meets the target (P50 < 240 ms): use it.
- B: it misses (P50 above the acceptable ceiling): neither is viable for real
  time; fall back to a disaggregated/lighter pipeline.
- C: better than the baseline but not enough (target < P50 < ceiling): a
  judgement call (accept, tier, or optimise further).

Here the scenarios are the ones defined once in :mod:`saraikit.core.verdict`,
decided on the *confidence interval* of each P50 (pass / fail / inconclusive
against the target, never a verdict without an interval), and "better" needs
the CI of the ratio to exclude 1.

Both models are measured interleaved over ``processes`` rounds (A, B, A, B,
... each in a fresh process, :func:`saraikit.experiments.bench.bench_interleaved`),
so each P50 CI is the hierarchical one over processes, and B is compared with
A paired by round (:func:`saraikit.core.spread.compare_paired`): a difference
must stand out from the process-to-process drift, not only from the noise
inside one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from saraikit.core import spread, stats
from saraikit.core.verdict import NOT_JUDGED, judge_or_not, scenario
from saraikit.experiments.bench import DEFAULT_PROCESSES, BenchOutcome, OnnxBench, bench_interleaved, spread_columns


def versus_target(summary: stats.Summary, target_ms: float) -> str:
    """pass / fail / inconclusive (or not judged) of a P50 against the target, by the one verdict rule."""
    return judge_or_not(summary.p50, summary.p50_ci_low, summary.p50_ci_high, target_ms, "lower")


@dataclass
class SideBySide:
    name_a: str
    name_b: str
    outcome_a: BenchOutcome
    outcome_b: BenchOutcome
    target_ms: float
    ceiling_ms: float

    @property
    def comparison(self) -> spread.PairedComparison | stats.Comparison:
        """B relative to A (ratio < 1: B is faster), paired by round when both have processes.

        Outcomes without per-process samples (built by hand, or by an older
        caller) fall back to :func:`saraikit.core.stats.compare` on the pooled
        samples, which ignores process-to-process drift.
        """
        if self.outcome_a.processes and self.outcome_b.processes:
            return spread.compare_paired(self.outcome_a.processes, self.outcome_b.processes)
        return stats.compare(self.outcome_a.raw["samples_ms"], self.outcome_b.raw["samples_ms"])

    def table(self) -> pd.DataFrame:
        rows = []
        for name, outcome in ((self.name_a, self.outcome_a), (self.name_b, self.outcome_b)):
            if not outcome.ok:
                rows.append({"model": name, "status": "failed", "error": outcome.error})
                continue
            s, raw = outcome.summary, outcome.raw
            rows.append({
                "model": name, "status": "ok", "n": s.n, "load_s": raw["load_s"],
                "first_inference_ms": raw["first_inference_ms"], "p50_ms": s.p50,
                "p50_ci": stats.format_interval(s.p50, s.p50_ci_low, s.p50_ci_high, s.confidence),
                "p90": stats.format_percentile(s, "p90"), "p99": stats.format_percentile(s, "p99"),
                "throughput_per_s": 1000.0 / s.mean, **spread_columns(outcome.spread),
                "peak_rss_MiB": raw["memory"]["after"]["peak_rss_bytes"] / 2**20,
                f"target {self.target_ms:g} ms": versus_target(s, self.target_ms), "error": "",
            })
        return pd.DataFrame(rows)

    def verdict(self) -> str:
        """Seed 004's decision, computed from the measured CIs."""
        if not (self.outcome_a.ok and self.outcome_b.ok):
            failed = [n for n, o in ((self.name_a, self.outcome_a), (self.name_b, self.outcome_b)) if not o.ok]
            return f"No verdict: the benchmark of {', '.join(failed)} failed."
        sa, sb = self.outcome_a.summary, self.outcome_b.summary
        judged = {self.name_a: versus_target(sa, self.target_ms), self.name_b: versus_target(sb, self.target_ms)}
        cmp = self.comparison
        faster = {"faster": f"{self.name_b} is faster than {self.name_a}",
                  "slower": f"{self.name_b} is slower than {self.name_a}",
                  "insufficient samples": f"too few rounds to compare {self.name_b} with {self.name_a}"}.get(
            cmp.verdict, f"{self.name_b} and {self.name_a} are not significantly different")
        ratio = (f"{faster} (ratio of medians {cmp.ratio:.3f}, 95% CI {cmp.ci_low:.3f} to {cmp.ci_high:.3f}, "
                 f"{_evidence(cmp)}).")
        if NOT_JUDGED in judged.values():
            unjudged = [n for n, v in judged.items() if v == NOT_JUDGED]
            return f"No verdict: {' and '.join(unjudged)} has no confidence interval (too few samples). {ratio}"
        meets = [n for n, v in judged.items() if v == "pass"]
        if meets:
            best = min(meets, key=lambda n: sa.p50 if n == self.name_a else sb.p50)
            return (f"Scenario A: {' and '.join(meets)} meet{'s' if len(meets) == 1 else ''} the {self.target_ms:g} ms "
                    f"P50 target with the whole confidence interval below it; use {best}. {ratio}")
        best_name, best = (self.name_a, sa) if sa.p50 <= sb.p50 else (self.name_b, sb)
        found = scenario(best.p50, best.p50_ci_low, best.p50_ci_high, self.target_ms, self.ceiling_ms)
        if found.letter == "B":
            return (f"Scenario B: neither meets the {self.target_ms:g} ms target and even the faster one "
                    f"({best_name}, P50 {best.p50:.1f} ms) is above the {self.ceiling_ms:g} ms ceiling: neither is "
                    f"viable for real time; look for a lighter pipeline. {ratio}")
        if found.letter == "C":
            return (f"Scenario C: {best_name} is the faster (P50 {best.p50:.1f} ms) but misses the {self.target_ms:g} "
                    f"ms target while staying under the {self.ceiling_ms:g} ms ceiling: better, not enough; optimise "
                    f"further (quantization, session options) or accept the latency knowingly. {ratio}")
        return (f"Borderline: the confidence interval of {best_name} straddles the {self.target_ms:g} ms target or "
                f"the {self.ceiling_ms:g} ms ceiling; measure more before deciding. {ratio}")


def _evidence(cmp: spread.PairedComparison | stats.Comparison) -> str:
    if isinstance(cmp, spread.PairedComparison):
        return f"paired over {cmp.k} round{'s' if cmp.k != 1 else ''}"
    return f"n={cmp.n_baseline}/{cmp.n_candidate}, pooled samples"


def side_by_side(spec_a: OnnxBench, spec_b: OnnxBench, name_a: str, name_b: str, target_ms: float = 240.0,
                 ceiling_ms: float = 500.0, store=None, run_id: str | None = None,
                 sha_a: str | None = None, sha_b: str | None = None, timeout_s: float = 900.0,
                 processes: int = DEFAULT_PROCESSES) -> SideBySide:
    """Benchmark both models interleaved over ``processes`` rounds (A, B, A, B, ...), each run a fresh process."""
    outcomes = bench_interleaved({"a": spec_a, "b": spec_b}, processes, store, run_id, "compare",
                                 {"a": name_a, "b": name_b}, {"a": sha_a, "b": sha_b}, timeout_s=timeout_s)
    return SideBySide(name_a, name_b, outcomes["a"], outcomes["b"], target_ms, ceiling_ms)
