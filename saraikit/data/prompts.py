"""Prompts for an LLM voice assistant: the question sets and how a question becomes a prompt.

Decisions:

- A *base* model (no chat template in its GGUF, like the default
  gemma-3-270m) gets a few-shot dialogue (:func:`few_shot_prompt`): an intro
  line and three "User: ... / Assistant: ..." exchanges in English or
  Spanish, ending with an open assistant turn; generation stops at the next
  user turn. No example answers a question of :data:`PROMPTS`.
- A model whose GGUF carries ``tokenizer.chat_template`` gets its own
  template instead (:func:`chat_template_prompt`), rendered by
  llama-cpp-python's ``Jinja2ChatFormatter``, i.e. what
  ``create_chat_completion`` would send. :func:`build_prompt` picks between
  the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saraikit.core.errors import ConfigError, ModelError

PROMPTS: dict[str, tuple[str, ...]] = {
    "en": (
        "What time is it in Tokyo?",
        "Set a timer for ten minutes.",
        "What's the weather like in London today?",
        "How do I boil an egg?",
        "Remind me to call my mother tomorrow at noon.",
        "What is the capital of Australia?",
        "Turn off the living room lights.",
        "How many centimeters are in an inch?",
    ),
    "es": (
        "¿Qué tiempo hace hoy en Madrid?",
        "¿Qué hora es en Ciudad de México?",
        "Pon una alarma a las siete de la mañana.",
        "¿Cuál es la capital de Argentina?",
        "¿Cómo se prepara un café con leche?",
        "Recuérdame comprar pan esta tarde.",
        "Apaga las luces de la cocina.",
        "¿Cuántos kilómetros hay en una milla?",
    ),
}


@dataclass(frozen=True)
class Dialogue:
    """A few-shot voice-assistant dialogue in one language."""

    intro: str
    user: str  # speaker labels
    assistant: str
    examples: tuple[tuple[str, str], ...]  # (question, answer); none answers a question in PROMPTS
    system: str  # the same instruction, for models with a chat template


FEW_SHOT: dict[str, Dialogue] = {
    "en": Dialogue(
        intro="The following is a conversation with a helpful voice assistant. "
        "The assistant answers in one or two short, friendly sentences.",
        user="User",
        assistant="Assistant",
        examples=(
            ("What's two plus two?", "Two plus two is four."),
            ("Can you tell me a fun fact about octopuses?", "Sure! An octopus has three hearts."),
            ("What should I wear if it's raining?", "Take a waterproof jacket and an umbrella."),
        ),
        system="You are a helpful voice assistant. Answer in one or two short, friendly sentences.",
    ),
    "es": Dialogue(
        intro="La siguiente es una conversación con un asistente de voz amable. "
        "El asistente responde con una o dos frases cortas.",
        user="Usuario",
        assistant="Asistente",
        examples=(
            ("¿Cuánto es dos más dos?", "Dos más dos son cuatro."),
            ("¿Me cuentas un dato curioso sobre los pulpos?", "¡Claro! Un pulpo tiene tres corazones."),
            ("¿Qué me pongo si llueve?", "Lleva un chubasquero y un paraguas."),
        ),
        system="Eres un asistente de voz amable. Responde con una o dos frases cortas.",
    ),
}


@dataclass(frozen=True)
class Prompt:
    """A prompt as the model will read it, with where to stop."""

    text: str
    stop: tuple[str, ...] = ()
    language: str = ""
    kind: str = "raw"  # "few-shot", "chat-template" or "raw"
    add_bos: bool = True  # let the tokenizer add BOS (False when a chat template already wrote it)
    special: bool = False  # parse special-token text such as "<start_of_turn>" (chat templates)


def check_question(question: Any, where: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: the question/prompt is empty or not text: {question!r}")
    return question.strip()


def _check_language(language: str, where: str) -> Dialogue:
    if language not in FEW_SHOT:
        raise ConfigError(f"{where}: unknown language {language!r}; known: {', '.join(sorted(FEW_SHOT))}")
    return FEW_SHOT[language]


def few_shot_prompt(question: str, language: str = "en") -> Prompt:
    """The few-shot dialogue ending with ``question`` and an open assistant turn."""
    question = check_question(question, "few_shot_prompt")
    dialogue = _check_language(language, "few_shot_prompt")
    lines = [dialogue.intro, ""]
    for example_question, answer in dialogue.examples:
        lines += [f"{dialogue.user}: {example_question}", f"{dialogue.assistant}: {answer}"]
    lines += [f"{dialogue.user}: {question}", f"{dialogue.assistant}:"]
    return Prompt("\n".join(lines), stop=(f"\n{dialogue.user}:",), language=language, kind="few-shot")


def chat_template(llm) -> str | None:
    """The GGUF's chat template, or None for a base model without one."""
    return llm.metadata.get("tokenizer.chat_template")


def chat_template_prompt(llm, question: str, language: str = "en") -> Prompt:
    """``question`` rendered with the model's own chat template (a system turn, then the user turn)."""
    question = check_question(question, "chat_template_prompt")
    dialogue = _check_language(language, "chat_template_prompt")
    template = chat_template(llm)
    if template is None:
        raise ModelError(f"{llm.model_path}: the GGUF has no tokenizer.chat_template; use few_shot_prompt")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = llm._model
    formatter = Jinja2ChatFormatter(template, eos_token=model.token_get_text(llm.token_eos()),
                                    bos_token=model.token_get_text(llm.token_bos()))
    messages = [{"role": "system", "content": dialogue.system}, {"role": "user", "content": question}]
    rendered = formatter(messages=messages)
    # Like create_chat_completion: the template writes BOS itself; end-of-generation tokens stop us anyway.
    return Prompt(rendered.prompt, stop=(), language=language, kind="chat-template",
                  add_bos=not rendered.added_special, special=True)


def build_prompt(llm, question: str, language: str = "en") -> Prompt:
    """The chat template when the model has one, otherwise the few-shot dialogue."""
    if chat_template(llm) is not None:
        return chat_template_prompt(llm, question, language)
    return few_shot_prompt(question, language)
