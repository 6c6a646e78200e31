"""Prompts: the question sets, the few-shot dialogue, and a model's own chat template."""

import pytest

from saraikit.core.errors import ConfigError
from saraikit.data import prompts


def test_few_shot_prompt_ends_with_an_open_assistant_turn_and_stops_at_the_next_user():
    prompt = prompts.few_shot_prompt("  What time is it in Tokyo? ", "en")
    assert prompt.text.endswith("\nUser: What time is it in Tokyo?\nAssistant:")
    assert prompt.stop == ("\nUser:",)
    assert prompt.text.count("\nUser: ") == 4 and prompt.text.count("\nAssistant: ") == 3
    assert (prompt.language, prompt.kind, prompt.add_bos, prompt.special) == ("en", "few-shot", True, False)


def test_spanish_few_shot_prompt_uses_spanish_labels_and_stop():
    prompt = prompts.few_shot_prompt("¿Qué tiempo hace hoy en Madrid?", "es")
    assert prompt.text.endswith("\nUsuario: ¿Qué tiempo hace hoy en Madrid?\nAsistente:")
    assert prompt.stop == ("\nUsuario:",)
    assert "User:" not in prompt.text and "Assistant" not in prompt.text


def test_prompt_sets_have_eight_questions_none_answered_by_an_example():
    for language, questions in prompts.PROMPTS.items():
        examples = {question for question, _ in prompts.FEW_SHOT[language].examples}
        assert len(questions) == 8 and len(set(questions)) == 8
        assert not examples & set(questions)


@pytest.mark.parametrize("question", ["", "   ", None])
def test_empty_question_is_a_config_error(question):
    with pytest.raises(ConfigError, match="empty"):
        prompts.few_shot_prompt(question)


def test_unknown_language_is_a_config_error():
    with pytest.raises(ConfigError, match="'fr'.*known: en, es"):
        prompts.few_shot_prompt("Bonjour ?", "fr")


class _FakeVocab:
    def token_get_text(self, token):
        return {1: "<s>", 2: "</s>"}[token]


class _FakeLlm:
    """Just what chat_template_prompt reads from a Llama."""

    model_path = "fake.gguf"
    _model = _FakeVocab()
    metadata = {"tokenizer.chat_template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"}

    def token_bos(self):
        return 1

    def token_eos(self):
        return 2


def test_a_model_with_a_chat_template_gets_its_template():
    prompt = prompts.build_prompt(_FakeLlm(), "¿Qué hora es?", "es")
    assert prompt.kind == "chat-template" and prompt.special and not prompt.add_bos
    assert prompt.text == f"<s><system>{prompts.FEW_SHOT['es'].system}</s><user>¿Qué hora es?</s><assistant>"
