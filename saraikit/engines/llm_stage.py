"""The LLM stage: a GGUF model through llama-cpp-python, streaming text pieces.

Decisions:

- Every answer starts from a clean context, the same way the LLM latency
  protocol starts one (:func:`saraikit.engines.llama.fresh_context`: binding
  state, KV cache and perf counters), so the pipeline's time to first token
  and the protocol's are the same measurement. ``reset_cache=False`` keeps
  the previous state (llama-cpp-python then reuses a prompt prefix it has
  seen, which flatters repeated prompts).
- The ``prompt`` event marks the moment the clean context is ready and the
  prompt string goes in; time to first token runs from it to
  ``first_output`` (tokenizing, prompt evaluation and the first sample), as
  in the protocol.
- Streaming with ``stop`` strings holds back text that could start a stop
  string, which can delay ``first_output``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from saraikit.core.errors import ConfigError, DataError
from saraikit.engines.llama import LlamaConfig, build_llama, fresh_context
from saraikit.engines.stage import Stage, check_text


class LlamaLLM(Stage):
    """A GGUF model through llama-cpp-python, streaming text pieces (about one per token)."""

    kind = "llm"
    SETTINGS = ("max_tokens", "stop", "temperature", "reset_cache")

    def __init__(
        self,
        model_path: str | Path,
        llama_config: LlamaConfig | None = None,
        max_tokens: int = 64,
        stop: Iterable[str] = (),
        prompt_builder: Callable[[str], str] | None = None,
        temperature: float = 0.0,
        reset_cache: bool = True,
        name: str | None = None,
    ):
        super().__init__(name or Path(model_path).stem)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"LlamaLLM.max_tokens must be an int >= 1, got {max_tokens!r}")
        self.model_path = Path(model_path)
        self.llama_config = llama_config or LlamaConfig()
        self.max_tokens = max_tokens
        self.stop = [stop] if isinstance(stop, str) else list(stop)
        self.prompt_builder = prompt_builder
        self.temperature = temperature
        self.reset_cache = reset_cache
        self.llm = None

    def _load(self) -> None:
        self.llm = build_llama(self.model_path, self.llama_config)

    def _check_input(self, text):
        text = check_text(text, f"llm {self.name!r}")
        prompt = self.prompt_builder(text) if self.prompt_builder else text
        if not prompt:
            raise DataError(f"llm {self.name!r}: the prompt is empty")
        return prompt

    def _produce(self, prompt, mark, meta):
        meta["prompt_tokens"] = len(self.llm.tokenize(prompt.encode("utf-8")))
        if self.reset_cache:
            fresh_context(self.llm)
        mark("prompt")
        pieces = 0
        chunks = self.llm(prompt, max_tokens=self.max_tokens, stream=True, temperature=self.temperature,
                          stop=self.stop or None)
        for chunk in chunks:
            choice = chunk["choices"][0]
            if choice.get("finish_reason"):
                meta["finish_reason"] = choice["finish_reason"]
            if choice["text"]:
                pieces += 1
                yield choice["text"]
        meta["pieces"] = pieces

    def _join(self, parts, meta):
        return "".join(parts)

    def warmup_input(self):
        return "Hello"
