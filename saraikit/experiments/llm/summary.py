"""Notebook 04's sentences: markdown lines computed from the objects the LLM protocol returns.

Decisions:

- Every figure in a sentence comes from the measured objects (the loaded
  model, the answers frame, the Throughputs, the sweep and context frames);
  nothing measured once is written here.
- A measurement is called contaminated when other processes kept at least
  ``ContentionCaveat.threshold`` cores busy on average; the threshold is the
  notebook's ``contended_cores`` parameter. Under contention the linearity of
  prompt time in prompt length is not judged.
- The binding check is judged against its goal (binding tokens/s within
  ``tolerance`` of llama.cpp's own clock) by ``saraikit.core.verdict``, on the
  Student-t CI of the mean per-repetition ratio: pass only when the whole
  interval lies inside both bounds, fail when it lies wholly outside one. The
  pooled ratio is shown beside the verdict.
- A thread count is only called best when ``thread_comparison`` found it
  significantly faster than the fewest-threads baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import pandas as pd

from saraikit.core import stats
from saraikit.core.contention import Contention
from saraikit.core.verdict import NOT_JUDGED, judge_or_not
from saraikit.experiments.llm.load import LoadedLlama
from saraikit.experiments.llm.throughput import BindingCheck, Throughput, compare_with_llama_cpp

FACT_NAMES = ["architecture", "name", "size_label", "parameters", "quant_type", "dominant_tensor_type",
              "context_length", "embedding_length", "block_count", "head_count", "head_count_kv", "vocab_size",
              "tokenizer_model", "has_chat_template"]


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# --------------------------------------------------------------------------
# 1. the GGUF


def gguf_facts(details: dict, file_bytes: int) -> pd.DataFrame:
    """The header facts the notebook shows, one row per fact."""
    facts = {name: details.get(name) for name in FACT_NAMES}
    facts["file size (MiB)"] = round(mib(file_bytes), 1)
    facts["tensor types"] = ", ".join(f"{t} x{n}" for t, n in details.get("tensor_types", {}).items())
    return pd.DataFrame(facts.items(), columns=["fact", "value"]).set_index("fact")


def prompt_style(details: dict) -> str:
    """A chat template in the GGUF decides the prompt style (see ``saraikit.data.prompts``)."""
    if details.get("has_chat_template"):
        return "the model's own chat template"
    return "a few-shot dialogue (base model: no chat template)"


def gguf_lines(details: dict, n_ctx: int) -> list[str]:
    return [f"**Prompt style: {prompt_style(details)}.** The file says `{details['quant_type']}` but most weight "
            f"elements are `{details['dominant_tensor_type']}`: a K-quant 'mix' keeps some tensors at higher "
            f"precision. Training context: {details['context_length']} tokens; this notebook uses n_ctx = {n_ctx}."]


# --------------------------------------------------------------------------
# 2. load, memory and thread defaults


def load_lines(measured: LoadedLlama) -> list[str]:
    """Load time and the memory it cost, with the mapped GGUF told apart from private memory."""
    after = measured.memory_after
    lines = [f"- Load: **{measured.load_s:.2f} s** wall time for `Llama(...)` (llama.cpp's own clock: "
             f"{measured.llama_load_ms:.0f} ms), one load in a fresh process, n=1.",
             f"- After loading: RSS {mib(after.rss_bytes):.0f} MiB, PSS {mib(after.pss_bytes or 0):.0f} MiB, "
             f"USS {mib(after.uss_bytes or 0):.0f} MiB (the process, including Python and its libraries)."]
    if measured.mapped is not None:
        lines.append(f"- Of that RSS, {mib(measured.mapped.rss_bytes):.0f} MiB are resident pages of the mapped GGUF "
                     f"({mib(measured.file_bytes):.0f} MiB file, {measured.mapped.rss_bytes / measured.file_bytes:.0%} "
                     f"of it touched so far); their PSS share here is {mib(measured.mapped.pss_bytes):.0f} MiB.")
    else:
        lines.append("- The GGUF is not mapped (use_mmap off): its weights were read into private memory.")
    if measured.split_before is not None and measured.split_after is not None:
        anon = measured.split_after.anon_bytes - measured.split_before.anon_bytes
        lines.append(f"- Private (anonymous) memory grew by {mib(anon):.0f} MiB while loading: KV cache for "
                     f"n_ctx={measured.config.n_ctx}, compute buffers and any weights repacked for this CPU. That is "
                     f"the part a second process loading the same file would pay again.")
    return lines


def thread_options(defaults: dict, threads: int) -> pd.DataFrame:
    """llama-cpp-python's default thread counts (read back from llama.cpp) beside the ones used here."""
    return pd.DataFrame({"llama-cpp-python default": [defaults["n_threads"], defaults["n_threads_batch"]],
                         "this notebook": [threads, threads]}, index=["n_threads", "n_threads_batch"])


def thread_default_lines(defaults: dict, threads: int, physical_cores: int) -> list[str]:
    return [f"By default generation would use **{defaults['n_threads']}** thread(s) and prompt processing "
            f"{defaults['n_threads_batch']} on this {physical_cores}-core machine; here both are set explicitly to "
            f"{threads} (physical cores unless the `n_threads` parameter says otherwise). The sweep below shows what "
            f"each count gives."]


# --------------------------------------------------------------------------
# contention


@dataclass(frozen=True)
class ContentionCaveat:
    """When other work makes a measurement pessimistic, and the sentence that says so."""

    threshold: float  # other processes busier than this many cores on average contaminate a run
    threads: int
    logical_cores: int

    def contended(self, contention: Contention) -> bool:
        return contention.other_cores >= self.threshold

    def text(self, contention: Contention) -> str:
        """``""`` for a clean run, else a sentence starting with a space."""
        if not self.contended(contention):
            return ""
        return (f" **Contaminated**: {contention.format()}; with {self.threads} threads on {self.logical_cores} "
                "cores these figures are pessimistic; rerun on an idle machine.")


# --------------------------------------------------------------------------
# 3. answers


def answer_summaries(answers: pd.DataFrame) -> dict[str, stats.Summary]:
    """TTFT and total latency over both languages and per language."""
    summaries = {}
    for language, part in [("en+es", answers), *answers.groupby("language")]:
        summaries[f"TTFT {language}"] = stats.summarize(part["ttft_ms"])
        summaries[f"total {language}"] = stats.summarize(part["total_ms"])
    return summaries


def answer_lines(answers: pd.DataFrame, max_tokens: int, threads: int, hw: str, contention: Contention) -> list[str]:
    ttft = stats.summarize(answers["ttft_ms"])
    total = stats.summarize(answers["total_ms"])
    decode = answers["decode_tokens_per_s"].dropna()
    repetitions = answers["repetition"].nunique()
    full_prompt = bool((answers["llama_n_p_eval"] == answers["n_prompt_tokens"]).all())
    return [
        f"- TTFT over {answers['question'].nunique()} questions x {repetitions} repetition(s): {ttft.format()}.",
        f"- Total latency per answer: {total.format()}; answers of {answers['n_generated'].mean():.1f} tokens on "
        f"average ({(answers['stop_reason'] == 'length').mean():.0%} cut at max_tokens={max_tokens}).",
        f"- Decode speed after the first token: {decode.mean():.1f} ± {decode.std():.1f} tokens/s (n={len(decode)}).",
        f"- Prefix reuse check: llama.cpp evaluated the whole prompt in {'every' if full_prompt else 'NOT every'} "
        f"run (its prompt-token counter equals the prompt length).",
        f"- {hw}; {threads} threads; during these runs {contention.format()}.",
    ]


# --------------------------------------------------------------------------
# 4. throughput and the binding check


def binding_verdict(check: BindingCheck) -> str:
    """pass / fail / inconclusive for "within ±tolerance of llama.cpp's clock", or not judged without a CI."""
    low, high = stats.mean_ci(check.per_repetition)
    mean = sum(check.per_repetition) / len(check.per_repetition) if check.per_repetition else math.nan
    above_floor = judge_or_not(mean, low, high, 1.0 - check.tolerance, "higher")
    below_ceiling = judge_or_not(mean, low, high, 1.0 + check.tolerance, "lower")
    verdicts = {above_floor, below_ceiling}
    if NOT_JUDGED in verdicts or "missing" in verdicts:
        return NOT_JUDGED
    if "fail" in verdicts:
        return "fail"
    return "pass" if verdicts == {"pass"} else "inconclusive"


def binding_line(check: BindingCheck) -> str:
    return (f"- Binding vs llama.cpp, {check.test}: ratio {check.ratio:.4f} (pooled over {check.n} repetitions; "
            f"per repetition {min(check.per_repetition):.4f} to {max(check.per_repetition):.4f}); within "
            f"±{check.tolerance:.0%}: **{binding_verdict(check)}**.")


def bench_lines(results: list[Throughput], table: pd.DataFrame, hw: str, contention: Contention) -> list[str]:
    """Each test's tokens/s with its CI (rows of ``throughput_table``), then each binding check."""
    lines = [f"- {r.format()}, 95% CI {row.ci_low:.1f} to {row.ci_high:.1f} t/s."
             for r, row in zip(results, table.itertuples())]
    lines += [binding_line(compare_with_llama_cpp(r)) for r in results]
    return lines + [f"- {hw}; during these runs {contention.format()}."]


# --------------------------------------------------------------------------
# 5. threads


def ci_text(estimate: float, low: float, high: float, n: int) -> str:
    if pd.isna(low):
        return f"95% CI n/a: n={n} < {stats.min_samples_for_median_ci(0.95)}"
    return stats.format_interval(estimate, low, high, 0.95)


def thread_line(part: pd.DataFrame) -> str:
    """The best thread count of one test (rows of ``thread_comparison`` for one kind) against the baseline."""
    best = part[part["is_best"]].iloc[0]
    base = part[part["verdict"] == "baseline"].iloc[0]
    if best["n_threads"] == base["n_threads"]:
        return (f"- {best['test']}: the fewest threads ({base['n_threads']}) gave the highest mean, "
                f"{base['tokens_per_s_mean']:.1f} t/s; more threads did not help here.")
    ci = ci_text(best["time_ratio"], best["ci_low"], best["ci_high"], best["n"])
    claim = (f"best at **{best['n_threads']} threads**" if best["best_is_significant"]
             else f"highest mean at {best['n_threads']} threads but {best['verdict']} versus {base['n_threads']}")
    return (f"- {best['test']}: {claim}: {best['tokens_per_s_mean']:.1f} ± {best['tokens_per_s_std']:.1f} t/s vs "
            f"{base['tokens_per_s_mean']:.1f} ± {base['tokens_per_s_std']:.1f} t/s with {base['n_threads']} "
            f"(time ratio {best['time_ratio']:.3f}, {ci}, n={best['n']} each).")


def plot_threads(thread_table: pd.DataFrame | None, title: str):
    """Mean ± std tokens/s against thread count, one panel per test (empty panels when nothing finished)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    parts = [] if thread_table is None else thread_table.groupby("kind", sort=False)
    for ax, (_, part) in zip(axes, parts):
        ax.errorbar(part["n_threads"], part["tokens_per_s_mean"], yerr=part["tokens_per_s_std"], marker="o",
                    capsize=4)
        ax.set(xticks=part["n_threads"], xlabel="threads (n_threads = n_threads_batch)",
               ylabel="tokens/s (mean ± std)", title=f"{part['test'].iloc[0]}, n={part['n'].iloc[0]} per count")
        ax.set_ylim(bottom=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# 6. context scaling


def context_parts(context: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The successful pp and tg rows of ``context_scaling``, with the std of each cell's wall times."""
    ok = context[context["status"] == "ok"].reindex(columns=[*context.columns, "kind", "samples_ms"]).copy()
    ok = ok.loc[:, ~ok.columns.duplicated()]
    ok["wall_ms_std"] = ok["samples_ms"].map(lambda s: pd.Series(s, dtype=float).std())
    return ok[ok["kind"] == "pp"], ok[ok["kind"] == "tg"]


def fit_line(row, contended: bool, linear_r2: float) -> str:
    """One ``prompt_length_fit`` row as a sentence; linearity is not judged under contention."""
    if row.lengths < 3:
        return f"- n_ctx {row.n_ctx}: only {row.lengths} prompt length(s) fit, too few to judge linearity."
    if contended:
        shape = "linearity in prompt length not judged: measured under contention"
    else:
        shape = f"prompt time {'grows' if row.linear else 'does NOT grow'} linearly with prompt length"
    trend = "rises" if row.ms_per_token_last > row.ms_per_token_first else "falls"
    return (f"- n_ctx {row.n_ctx}: {shape} (R² {row.r2:.4f} over {row.n_samples} runs, {row.shortest}-{row.longest} "
            f"tokens, threshold {linear_r2}): {row.slope_ms_per_token:.3f} ms per token {row.intercept_ms:+.1f} ms; "
            f"the measured cost per token {trend} from {row.ms_per_token_first:.3f} ms at {row.shortest} tokens to "
            f"{row.ms_per_token_last:.3f} ms at {row.longest}.")


def context_lines(fit: pd.DataFrame, pp_context: pd.DataFrame, tg_context: pd.DataFrame, contended: bool,
                  linear_r2: float) -> list[str]:
    lines = [fit_line(row, contended, linear_r2) for row in fit.itertuples()]
    shared = pp_context.groupby("prompt_length").filter(lambda g: g["n_ctx"].nunique() > 1)
    if not shared.empty:
        spread = shared.groupby("prompt_length")["wall_ms_mean"].agg(lambda s: s.max() / s.min())
        lines.append(f"- Same prompt length, different n_ctx: the slowest n_ctx takes {spread.min():.2f}x to "
                     f"{spread.max():.2f}x the fastest one's prompt time (n={int(shared['n'].max())} per cell).")
    deepest = tg_context[tg_context["n_ctx"] == tg_context["n_ctx"].max()].sort_values("prompt_length")
    if len(deepest) > 1:
        by_depth = ", ".join(f"d{r.prompt_length} {r.tokens_per_s_mean:.1f}" for r in deepest.itertuples())
        lines.append(f"- Generation speed as the context fills (n_ctx {deepest['n_ctx'].iloc[0]}, "
                     f"tg{int(deepest['n_tokens'].iloc[0])}, t/s by depth): {by_depth}.")
    return lines


def plot_context(pp_context: pd.DataFrame, tg_context: pd.DataFrame, fit: pd.DataFrame, title: str):
    """pp time against prompt length (with each fitted line) and tg speed against depth, per n_ctx."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for size, part in pp_context.groupby("n_ctx"):
        axes[0].errorbar(part["prompt_length"], part["wall_ms_mean"], yerr=part["wall_ms_std"], marker="o",
                         capsize=3, label=f"n_ctx {size}")
    for row in fit.itertuples():
        xs = [row.shortest, row.longest]
        axes[0].plot(xs, [row.intercept_ms + row.slope_ms_per_token * x for x in xs], ls=":", color="grey")
    n_pp = int(pp_context["n"].max()) if len(pp_context) else 0
    axes[0].set(xlabel="prompt length (tokens)", ylabel="prompt processing time (ms, mean ± std)",
                title=f"pp time vs prompt length (dotted: least-squares line), n={n_pp} each")
    for size, part in tg_context.groupby("n_ctx"):
        axes[1].errorbar(part["prompt_length"], part["tokens_per_s_mean"], yerr=part["tokens_per_s_std"],
                         marker="o", capsize=3, label=f"n_ctx {size}")
    n_gen = int(tg_context["n_tokens"].iloc[0]) if len(tg_context) else 0
    axes[1].set(xlabel="tokens already in context (depth)", ylabel="tokens/s (mean ± std)",
                title=f"tg{n_gen} after the prompt, n={n_pp} each")
    axes[1].set_ylim(bottom=0)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# conclusions


@dataclass
class LlmRun:
    """What notebook 04 measured, as the notebook holds it; the conclusions are computed from this."""

    run_id: str
    model_name: str
    details: dict  # the GGUF header facts (``inspect_model(...).details``)
    measured: LoadedLlama  # the fresh-process load
    answers: pd.DataFrame  # ``run_prompts`` rows, both languages
    bench: list[Throughput]  # pp then tg
    thread_table: pd.DataFrame | None  # ``thread_comparison``; None when no thread count finished
    default_threads: int  # llama-cpp-python's default generation threads, read back
    fit: pd.DataFrame  # ``prompt_length_fit``; empty when no context size finished
    pp_context: pd.DataFrame  # from :func:`context_parts`
    tg_context: pd.DataFrame
    hw: str
    contention: dict[str, Contention] = field(default_factory=dict)  # "prompts", "bench", "sweep", "context"


def model_line(run: LlmRun) -> str:
    details = run.details
    return (f"- **{run.model_name}**: {details['architecture']}, {details['quant_type']}, "
            f"{details['parameters'] / 1e6:.0f} M parameters, {mib(run.measured.file_bytes):.0f} MiB; prompted with "
            f"{prompt_style(details)}.")


def load_summary_line(measured: LoadedLlama) -> str:
    after = measured.memory_after
    mapped = (f", of which {mib(measured.mapped.rss_bytes):.0f} MiB is the mapped, shareable GGUF."
              if measured.mapped is not None else ".")
    return (f"- Load {measured.load_s:.2f} s in a fresh process; RSS {mib(after.rss_bytes):.0f} MiB / "
            f"PSS {mib(after.pss_bytes or 0):.0f} MiB after loading{mapped}")


def ttft_line(answers: pd.DataFrame, threads: int) -> str:
    ttft = stats.summarize(answers["ttft_ms"])
    return (f"- TTFT P50 **{stats.format_percentile(ttft, 'p50')}** "
            f"({ci_text(ttft.p50, ttft.p50_ci_low, ttft.p50_ci_high, ttft.n)}, n={ttft.n}, prompts en+es, "
            f"{threads} threads); P90 {stats.format_percentile(ttft, 'p90')}.")


def bench_summary_line(bench: list[Throughput]) -> str:
    checks = [compare_with_llama_cpp(r) for r in bench]
    judged = "; ".join(f"{c.test} ratio {c.ratio:.3f}, {binding_verdict(c)}" for c in checks)
    tolerance = checks[0].tolerance if checks else math.nan
    return (f"- {'; '.join(r.format() for r in bench)}. The binding's wall clock against llama.cpp's own clock "
            f"(goal: within ±{tolerance:.0%}): {judged}.")


def conclusion_lines(run: LlmRun, caveat: ContentionCaveat, linear_r2: float) -> list[str]:
    """The notebook's conclusions, each contaminated measurement with its caveat."""
    watched = run.contention
    lines = [model_line(run), load_summary_line(run.measured),
             ttft_line(run.answers, run.measured.config.n_threads) + caveat.text(watched["prompts"]),
             bench_summary_line(run.bench) + caveat.text(watched["bench"])]
    if run.thread_table is not None:
        lines += [thread_line(part) for _, part in run.thread_table.groupby("kind", sort=False)]
    else:
        lines.append("- Thread sweep: no thread count finished (see section 5).")
    lines.append(f"- llama-cpp-python's default would use {run.default_threads} generation thread(s) here; during "
                 f"the sweep {watched['sweep'].format()}." + caveat.text(watched["sweep"]))
    context_contended = caveat.contended(watched["context"])
    if context_contended:
        lines.append("- Context scaling:" + caveat.text(watched["context"]))
    lines += context_lines(run.fit, run.pp_context, run.tg_context, context_contended, linear_r2)
    lines.append(f"- Hardware: {run.hw}. All figures are in the results DB under run {run.run_id}.")
    return lines
