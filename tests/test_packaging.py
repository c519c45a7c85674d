"""What a non-editable install (the runtime image) ships: every folder of Python code must be a package."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_folder_is_a_package():
    missing = []
    for top in ("kfp_llmops", "components", "pipelines", "cli"):
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if any(folder.glob("*.py")) and not (folder / "__init__.py").exists():
                missing.append(str(folder.relative_to(ROOT)))
    assert missing == []


def test_setup_maps_components_pipelines_and_the_cli_into_the_package():
    text = (ROOT / "setup.py").read_text()
    assert 'FOLDERS = ("components", "pipelines", "cli")' in text
