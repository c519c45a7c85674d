"""Several LoRA adapters on one base in one server process (hf_server with --base-model and --adapter), asked through
the real ``openai`` client as users of vLLM's --enable-lora (and KServe's Hugging Face runtime) ask: the request's
``model`` picks the adapter, streaming, an unknown name, and an adapter added and removed while the base stays
loaded."""

import os

import pytest
import requests

from kfp_llmops.modeling import load_causal_lm, load_tokenizer
from kfp_llmops.prompts import PromptFormat
from kfp_llmops.serving.local import local_server

MESSAGES = [{"role": "user", "content": "copy: sun moon"}]


@pytest.fixture(scope="module")
def adapters(adapter_versions):
    return adapter_versions


def _expected(base_model, adapter_dir, max_tokens=12) -> str:
    """What the adapter answers in this process (peft on the base, greedy, the adapter's own prompt format)."""
    import torch
    from peft import PeftModel

    tokenizer = load_tokenizer(base_model)
    fmt = PromptFormat.load(adapter_dir)
    model = PeftModel.from_pretrained(load_causal_lm(base_model), str(adapter_dir)).eval()
    enc = tokenizer(fmt.prompt(tokenizer, MESSAGES), return_tensors="pt", add_special_tokens=False)
    stops = fmt.stop_token_ids(tokenizer)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=stops)
    new = out[0, enc["input_ids"].shape[1]:].tolist()
    new = new[:next((k for k, t in enumerate(new) if t in stops), len(new))]
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def test_adapters_on_one_base_through_the_openai_client(base_model, adapters, tmp_path):
    import openai

    expected = {name: _expected(base_model, path) for name, path in adapters.items()}
    assert expected["v1"] != expected["v2"]  # the test can tell the adapters apart
    extra = [arg for name, path in adapters.items() for arg in ("--adapter", name, str(path))]
    with local_server("base", base_model, serving_format="adapter", extra_args=extra, timeout_s=120,
                      log_path=tmp_path / "server.log") as url:
        client = openai.OpenAI(base_url=f"http://{url}/openai/v1", api_key="unused", max_retries=0)
        listed = {m.id: m for m in client.models.list().data}
        assert set(listed) == {"base", "v1", "v2"}

        def ask(model, **kwargs):
            return client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=12, temperature=0, **kwargs)

        for name in ("v1", "v2"):
            answer = ask(name)
            assert answer.model == name and answer.choices[0].message.content == expected[name], name
        assert ask("base").model == "base"  # the base itself, every adapter off

        # streaming: the same text in chunks, then the finish reason
        chunks = list(ask("v2", stream=True))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == expected["v2"] and len(chunks) > 2
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")

        with pytest.raises(openai.NotFoundError, match="'v9' not found; this server has 'base', 'v1', 'v2'"):
            ask("v9")

        # a new version added to the running server (vLLM's dynamic LoRA route), then taken out
        added = requests.post(f"http://{url}/v1/load_lora_adapter", timeout=60,
                              json={"lora_name": "v3", "lora_path": str(adapters["v2"])})
        assert added.status_code == 200, added.text
        assert ask("v3").choices[0].message.content == expected["v2"]
        bad = requests.post(f"http://{url}/v1/load_lora_adapter", timeout=60,
                            json={"lora_name": "v4", "lora_path": str(tmp_path)})
        assert bad.status_code == 400 and "no adapter_config.json" in bad.json()["detail"]
        gone = requests.post(f"http://{url}/v1/unload_lora_adapter", timeout=60, json={"lora_name": "v3"})
        assert gone.status_code == 200
        with pytest.raises(openai.NotFoundError):
            ask("v3")
        assert ask("v1").choices[0].message.content == expected["v1"]  # the others unaffected
        metrics = requests.get(f"http://{url}/metrics", timeout=10).text
    assert 'kfp_llmops_requests_total{model_name="v1",outcome="success"} 2.0' in metrics
    assert 'kfp_llmops_requests_total{model_name="v2",outcome="success"} 2.0' in metrics  # the stream counted once


def test_a_merged_folder_and_adapters_are_not_served_together(base_model, adapters):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kfp_llmops.serving.hf_server", "--model-name", "x", "--model-dir",
                           base_model, "--adapter", "v1", str(adapters["v1"])], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and "adapters go on a base model (--base-model)" in done.stderr
