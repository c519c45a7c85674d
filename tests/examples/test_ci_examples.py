"""The CI examples under examples/ci: valid YAML, and every `kfp-llmops` command in them parses with our CLI."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from kfp_llmops.cli import build_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"


def _scripts(doc) -> list[str]:
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in ([v] if k in ("run", "script") and isinstance(v, str) else _scripts(v))]
    if isinstance(doc, list):
        return [s for v in doc for s in ([v] if isinstance(v, str) else _scripts(v))]
    return []


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_example_commands_parse(name):
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    text = "\n".join(_scripts(doc)).replace("\\\n", " ")
    commands = [c.strip() for c in text.split("\n") if c.strip().startswith("kfp-llmops ")]
    assert commands, f"{name} calls no kfp-llmops command"
    assert any("python compile.py --check" in s for s in _scripts(doc))
    for command in commands:
        words = shlex.split(re.sub(r'"?\$\{?\w+\}?"?', "X", command))[1:]
        args = build_parser().parse_args(words)  # exits (SystemExit) on an option the CLI lacks
        assert args.if_data_changed and args.backend in ("kfp", "vertex")
        assert any(p.startswith("train_data_sha256=") for p in args.param)
