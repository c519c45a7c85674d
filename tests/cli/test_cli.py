import subprocess
import sys

import pytest

from kfp_llmops.cli import build_parser, main
from kfp_llmops.cli.submit import parse_arguments


def test_compile_check_is_clean():
    assert main(["compile", "--check"]) == 0


def test_run_arguments_come_from_demo_assets_and_params(tmp_path):
    args = build_parser().parse_args(
        ["run", "--demo-assets", str(tmp_path), "--param", "train_config={\"max_steps\": 10}", "--param", "model_name=rev"]
    )
    arguments = parse_arguments(args)
    assert arguments["base_model"] == str(tmp_path.resolve() / "base-model")
    assert arguments["train_config"] == {"max_steps": 10}
    assert arguments["model_name"] == "rev"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--backend", "vertex"], "--backend vertex needs --project"),
        (["run", "--backend", "kfp"], "--backend kfp needs --host"),
        (["run", "--param", "no-equals-sign"], "--param takes NAME=JSON_OR_TEXT"),
    ],
)
def test_missing_backend_settings_are_named(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "kfp_llmops.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("demo-assets", "compile", "run"):
        assert command in out
