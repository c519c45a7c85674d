"""Prompts for tests that build a model's input by hand."""


def format_prompt(instruction: str) -> str:
    """The plain format's prompt for one instruction (what a model trained with ``prompt_format: plain`` sees)."""
    return instruction.strip() + "\n"
