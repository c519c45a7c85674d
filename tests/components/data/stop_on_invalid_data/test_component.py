import pytest
from kfp.dsl import HTML

from kfp_llmops.components.data.stop_on_invalid_data.component import stop_on_invalid_data


def test_fails_with_the_validation_summary(tmp_path, capsys):
    report = HTML(uri=str(tmp_path / "r"), metadata={"summary": "d.jsonl: ... field 'response' ... line(s) 2"})
    with pytest.raises(SystemExit) as exited:
        stop_on_invalid_data.python_func(report=report)
    assert exited.value.code == 1
    assert "field 'response' ... line(s) 2" in capsys.readouterr().err
