"""The one prompt format shared by dataset preparation, training, evaluation, export and serving."""

from __future__ import annotations

PROMPT_TEMPLATE = "{instruction}\n"


def format_prompt(instruction: str) -> str:
    """Returns the text the model sees before it answers ``instruction``."""
    return PROMPT_TEMPLATE.format(instruction=instruction.strip())
