"""The adapter serving path against real vLLM (its CPU build, ``make test-vllm``), where our transformers server
stands in everywhere else: the same openai-client checks (two adapters on one base by name, streaming, an unknown
name, hot-loading), and the local rollout target's canary between two adapter versions with vLLM as the engine.

Skipped unless ``KFP_LLMOPS_VLLM_PYTHON`` names a Python with vLLM (``make test-vllm`` builds ``.venv-vllm``)."""

import os
from types import SimpleNamespace

import pytest
import requests

from kfp_llmops.serving.local import VLLM_PYTHON_ENV, local_server

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get(VLLM_PYTHON_ENV), reason=f"{VLLM_PYTHON_ENV} is not set (make test-vllm)")]
MESSAGES = [{"role": "user", "content": "copy: sun moon"}]


def peft_answer(base_model, adapter_dir, max_tokens=8) -> str:
    """Greedy in this process with peft: the adapter's own prompt format, ``max_tokens`` tokens, no stop token (vLLM
    stops at the base's generation config, which for the demo base is not the format's end of turn)."""
    import torch
    from peft import PeftModel

    from kfp_llmops.modeling import load_causal_lm, load_tokenizer
    from kfp_llmops.prompts import PromptFormat

    tokenizer = load_tokenizer(base_model)
    model = PeftModel.from_pretrained(load_causal_lm(base_model), str(adapter_dir)).eval()
    enc = tokenizer(PromptFormat.load(adapter_dir).prompt(tokenizer, MESSAGES), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def test_two_adapters_on_one_base_in_real_vllm_through_the_openai_client(base_model, adapter_versions, tmp_path):
    import openai

    expected = {name: peft_answer(base_model, path) for name, path in adapter_versions.items()}
    assert expected["v1"] != expected["v2"]
    extra = [a for name, path in adapter_versions.items() for a in ("--adapter", name, str(path))]
    with local_server("base", base_model, serving_format="adapter", engine="vllm", extra_args=extra, timeout_s=300,
                      log_path=tmp_path / "vllm.log") as url:
        client = openai.OpenAI(base_url=f"http://{url}/openai/v1", api_key="unused", max_retries=0)
        assert {m.id for m in client.models.list().data} == {"base", "v1", "v2"}

        def ask(model, **kwargs):
            return client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, temperature=0,
                                                  extra_body={"ignore_eos": True}, **kwargs)

        for name in ("v1", "v2"):  # vLLM's LoRA kernels answer what peft answers, token for token
            assert ask(name).choices[0].message.content.strip() == expected[name].strip(), name
        chunks = list(ask("v2", stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == expected["v2"].strip()
        with pytest.raises(openai.NotFoundError):  # vLLM's message names only the base, not the adapters
            ask("v9")
        added = requests.post(f"http://{url}/v1/load_lora_adapter", timeout=120,
                              json={"lora_name": "v3", "lora_path": str(adapter_versions["v2"])})
        assert added.status_code == 200, added.text
        assert ask("v3").choices[0].message.content.strip() == expected["v2"].strip()
        assert requests.post(f"http://{url}/v1/unload_lora_adapter", timeout=60, json={"lora_name": "v3"}).status_code == 200
        with pytest.raises(openai.NotFoundError):
            ask("v3")


def test_the_local_target_canaries_adapter_versions_on_real_vllm(base_model, adapter_versions, demo_assets, tmp_path):
    """The local target with engine vllm: one vLLM process, the base once, v1 (stable) and v2 (candidate) by name;
    vLLM's request metrics name only the base, so each window is measured per adapter on the client side."""
    from kfp_llmops.components.deployment.rollout_model import core
    from kfp_llmops.components.deployment.rollout_model.local import LocalTarget
    from kfp_llmops.deployment.requests import replay_messages
    from kfp_llmops.registry import PRODUCTION, open_registry

    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    for name in ("v1", "v2"):
        registry.register("llm", str(adapter_versions[name]), name * 32, {})
    registry.set_alias("llm", PRODUCTION, "1")
    cfg = core.RolloutConfig.from_dict({"serving_format": "adapter", "engine": "vllm", "schedule": [50, 100],
                                        "requests_per_step": 8, "shadow": {"requests": 4, "max_disagreement": 1.0,
                                                                           "latency_slack_ms": 1000},
                                        "analysis": {"min_requests": 4, "latency_slack_ms": 1000}})
    lines = []
    with LocalTarget("llm", adapter_versions["v2"], adapter_versions["v1"], replay_messages(str(demo_assets / "eval.jsonl"), limit=8),
                     cfg, serving_format="adapter", base_model=base_model, names={"stable": "llm-v1", "candidate": "llm-v2"},
                     engine="vllm", startup_timeout_s=300, log_dir=tmp_path) as target:
        result = core.execute(target, cfg, registry, "llm", "2", log=lines.append)
    assert result.decision == "promoted", "\n".join(lines)
    shadow, half, _ = result.steps
    assert (shadow.canary["requests"], shadow.stable["requests"], shadow.agreement < 1.0) == (4, 4, True)
    assert half.canary["requests"] == 4 and half.stable["requests"] == 4 and half.canary["errors"] == 0
    assert target.failed == {"stable": 0, "candidate": 0}
    assert registry.get_alias("llm", PRODUCTION).version == "2"
