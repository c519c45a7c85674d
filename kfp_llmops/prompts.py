"""How a record becomes the text and the tokens a model sees: one prompt format for every stage (prepare, train,
evaluate, export, serving, the CLI). Never imports kfp.

A :class:`PromptFormat` is a Jinja chat template (the tokenizer's own, ours, or one the user gives) and an optional
system prompt. Records become conversations (``[{"role", "content"}, ...]``): an instruction record is a user turn
(``instruction`` and ``input``) and an assistant turn (``response``). Training labels cover **every assistant turn**
(content and the end-of-turn tokens the template puts after it) and nothing else; evaluation scores the final
assistant turn and generates from the conversation before it with the template's generation prompt.

The assistant spans are found by rendering the conversation up to each assistant turn with and without it (the
template's own text, whatever its markup) and mapping characters to tokens with the fast tokenizer's offsets; a
template that rewrites earlier turns when a later one is added cannot be used for multi-turn labels and is refused
with that reason.

The resolved format travels as ``prompt_format.json`` with the prepared dataset, the adapter, the exported model and
the served model folder (where the tokenizer's ``chat_template`` is set to it), so serving formats exactly as training
did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.examples import IGNORE_INDEX, Example

FORMAT_FILE = "prompt_format.json"
PROMPT_FORMATS = ("auto", "chat-template", "plain")
ROLES = ("system", "user", "assistant")

# The plain format as a chat template: each non-assistant turn is its text and a newline, each assistant turn its
# text and the end-of-sequence token; a generation prompt adds nothing. One user turn gives "<instruction>\n".
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ message['content'] }}{{ eos_token }}"
    "{% else %}{{ message['content'] }}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class PromptFormat:
    """``template``: Jinja over ``messages`` (and ``add_generation_prompt``, ``eos_token``, ``bos_token``);
    ``kind``: where it came from (``chat-template``: the tokenizer's, ``plain``: ours, ``custom``: the user's);
    ``system_prompt``: put first in every conversation that has no system turn ("" for none)."""

    template: str = PLAIN_TEMPLATE
    kind: str = "plain"
    system_prompt: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("plain", "chat-template", "custom"):
            raise ConfigError(f"PromptFormat.kind must be plain, chat-template or custom, got {self.kind!r}")
        if not isinstance(self.template, str) or not self.template.strip():
            raise ConfigError("PromptFormat.template must be a non-empty Jinja string")

    # --- where it comes from and where it goes ---------------------------------------------------------------

    @classmethod
    def resolve(cls, tokenizer, spec: str = "auto", system_prompt: str = "") -> "PromptFormat":
        """``auto``: the tokenizer's chat template when it has one, else plain; ``chat-template``: the tokenizer's
        (an error when it has none); ``plain``; or a Jinja string (anything containing ``{{`` or ``{%``)."""
        check_spec(spec)
        own = getattr(tokenizer, "chat_template", None)
        own = own if isinstance(own, str) and own.strip() else None  # a dict of named templates: use "default"
        if own is None and isinstance(getattr(tokenizer, "chat_template", None), dict):
            own = tokenizer.chat_template.get("default")
        if spec == "auto":
            fmt = cls(own, "chat-template", system_prompt) if own else cls(PLAIN_TEMPLATE, "plain", system_prompt)
        elif spec == "chat-template":
            if not own:
                raise ConfigError("prompt_format 'chat-template': the tokenizer has no chat template; use 'plain', "
                                  "'auto', or give a Jinja template as prompt_format")
            fmt = cls(own, "chat-template", system_prompt)
        elif spec == "plain":
            fmt = cls(PLAIN_TEMPLATE, "plain", system_prompt)
        else:
            fmt = cls(spec, "custom", system_prompt)
        fmt.check(tokenizer)
        return fmt

    def check(self, tokenizer) -> None:
        """Renders a probe conversation, so that a broken template fails before any work, saying why."""
        probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]
        text = self.render(tokenizer, self.conversation(probe))
        if "ping" not in text or "pong" not in text:
            raise ConfigError(f"the {self.kind} prompt format does not render message contents (got {text[:200]!r})")
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError("the prompt format needs a fast tokenizer (tokenizer.json) to place the training labels")

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, directory: str | Path) -> None:
        (Path(directory) / FORMAT_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "PromptFormat":
        """The format saved in ``directory``; plain when there is none (adapters trained before formats existed)."""
        path = Path(directory) / FORMAT_FILE
        if not path.is_file():
            return cls()
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            return cls(**values)
        except (ValueError, TypeError) as exc:
            raise UserInputError(f"{path}: not a prompt format ({exc})") from None

    @classmethod
    def served(cls, directory: str | Path, tokenizer) -> "PromptFormat":
        """The format a served model folder is asked in: its ``prompt_format.json``; without one, its tokenizer's
        chat template, else plain."""
        if (Path(directory) / FORMAT_FILE).is_file():
            return cls.load(directory)
        template = getattr(tokenizer, "chat_template", None)
        return cls(template, "chat-template") if isinstance(template, str) and template.strip() else cls()

    def save_with(self, tokenizer, directory: str | Path) -> None:
        """Saves the tokenizer with this format as its chat template, and ``prompt_format.json``, in ``directory``:
        a served model folder then formats chat requests (``apply_chat_template``, an OpenAI-compatible server)
        exactly as training did. The tokenizer object itself is left as it was."""
        before = getattr(tokenizer, "chat_template", None)
        tokenizer.chat_template = self.template
        try:
            tokenizer.save_pretrained(directory)
        finally:
            tokenizer.chat_template = before
        self.save(directory)

    # --- records -------------------------------------------------------------------------------------------------

    def conversation(self, item) -> list[dict]:
        """A conversation from an ``(instruction, response)`` pair, an instruction string (a prompt), or a list of
        messages; the system prompt goes first when the conversation has no system turn."""
        if isinstance(item, str):
            messages = [{"role": "user", "content": item.strip()}]
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
            messages = [{"role": "user", "content": item[0].strip()}, {"role": "assistant", "content": item[1].strip()}]
        else:
            messages = [{"role": m["role"], "content": m["content"]} for m in item]
        if self.system_prompt and not (messages and messages[0]["role"] == "system"):
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        return messages

    def render(self, tokenizer, messages: Sequence[dict], generation_prompt: bool = False) -> str:
        try:
            return tokenizer.apply_chat_template(list(messages), chat_template=self.template, tokenize=False,
                                                 add_generation_prompt=generation_prompt)
        except Exception as exc:  # jinja2 errors, raise_exception() in the template (e.g. "roles must alternate")
            raise UserInputError(f"the {self.kind} prompt format cannot render this conversation: "
                                 f"{type(exc).__name__}: {exc}") from None

    def prompt(self, tokenizer, item) -> str:
        """The text a model sees before it answers: the conversation (without a final assistant turn) and the
        template's generation prompt."""
        messages = self.conversation(item)
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        return self.render(tokenizer, messages, generation_prompt=True)

    def assistant_spans(self, tokenizer, messages: list[dict], last_only: bool = False) -> tuple[str, list[tuple[int, int]]]:
        """The rendered conversation and the character spans of its assistant turns (each turn's text and what the
        template puts after it up to the next turn, e.g. the end-of-turn token)."""
        full = self.render(tokenizer, messages)
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if last_only:
            turns = turns[-1:]
        spans = []
        for i in turns:
            before = self.render(tokenizer, messages[:i], generation_prompt=True)
            upto = full if i == len(messages) - 1 else self.render(tokenizer, messages[: i + 1])
            if not (full.startswith(upto) and upto.startswith(before)):
                raise UserInputError(
                    f"the {self.kind} prompt format renders earlier turns differently once a later turn is added "
                    f"(assistant turn {i + 1} of {len(messages)}), so the assistant tokens cannot be located; "
                    "train on single-turn records, or give prompt_format a template that renders turns as they are")
            spans.append((len(before), len(upto)))
        return full, spans

    def encode(self, tokenizer, item, max_length: int, last_only: bool = False):
        return self.encode_many(tokenizer, [item], max_length, last_only=last_only)[0]

    def encode_many(self, tokenizer, items: Sequence, max_length: int, *, last_only: bool = False,
                    where: Sequence[str] | None = None, batch_size: int = 1024) -> list:
        """Token ids and labels (``-100`` outside the assistant spans) of each item, cut to ``max_length``;
        ``where`` names each item in errors (e.g. ``file:line``). Loss on every assistant turn, or the last one."""
        import numpy as np


        out = []
        for start in range(0, len(items), batch_size):
            texts, spans = [], []
            for k in range(start, min(len(items), start + batch_size)):
                try:
                    messages = self.conversation(items[k])
                    if not any(m["role"] == "assistant" for m in messages):
                        raise UserInputError("the conversation has no assistant turn to learn from")
                    text, turn_spans = self.assistant_spans(tokenizer, messages, last_only=last_only)
                except UserInputError as exc:
                    raise UserInputError(f"{where[k] if where else f'record {k + 1}'}: {exc}") from None
                texts.append(text)
                spans.append(turn_spans)
            enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
            for ids, offsets, turn_spans in zip(enc["input_ids"], enc["offset_mapping"], spans):
                starts = np.asarray([s for s, _ in offsets], dtype=np.int64)
                ends = np.asarray([e for _, e in offsets], dtype=np.int64)
                inside = np.zeros(len(ids), dtype=bool)
                for a, b in turn_spans:
                    inside |= (starts >= a) & (starts < b) & (ends > starts)
                ids_arr = np.asarray(ids, dtype=np.int64)
                labels = np.where(inside, ids_arr, IGNORE_INDEX)
                out.append(Example(input_ids=ids_arr[:max_length].tolist(), labels=labels[:max_length].tolist()))
        return out

    def stop_token_ids(self, tokenizer) -> list[int]:
        """The ids that end an answer: the tokenizer's end-of-sequence and the special token the template puts right
        after an assistant turn (e.g. ``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``)."""
        stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        messages = self.conversation([{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}])
        full, spans = self.assistant_spans(tokenizer, messages)
        turn = full[spans[-1][0] : spans[-1][1]]
        after = turn[turn.rfind("pong") + len("pong") :]
        special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        for token in tokenizer(after, add_special_tokens=False)["input_ids"]:
            if token in special:
                if token not in stops:
                    stops.append(token)
                break
        return stops


def check_spec(spec) -> None:
    """What can be checked without the tokenizer (in the CLI and the pipelines' check-configs step): one of
    :data:`PROMPT_FORMATS`, or a Jinja template that parses."""
    if not isinstance(spec, str):
        raise ConfigError(f"prompt_format must be a string, got {type(spec).__name__}")
    if spec in PROMPT_FORMATS:
        return
    if "{{" not in spec and "{%" not in spec:
        raise ConfigError(f"prompt_format must be one of {PROMPT_FORMATS} or a Jinja chat template, got {spec!r}")
    import jinja2

    try:
        jinja2.Environment().parse(spec)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"prompt_format: the Jinja template does not parse: {exc.message} (line {exc.lineno})") from None


def split_reference(item) -> tuple[object, str]:
    """``(context, reference)`` for evaluation: the conversation before its final assistant turn, and that turn's
    text. An ``(instruction, response)`` pair gives ``(instruction, response)``."""
    if isinstance(item, tuple):
        return item[0], item[1].strip()
    messages = list(item)
    if not messages or messages[-1]["role"] != "assistant":
        raise UserInputError("an evaluation conversation must end with an assistant turn (the reference answer)")
    return messages[:-1], messages[-1]["content"].strip()


def last_user_text(context) -> str:
    """What was asked, for reports: the instruction, or the last user turn of a conversation."""
    if isinstance(context, str):
        return context
    users = [m["content"] for m in context if m["role"] == "user"]
    return users[-1] if users else ""
