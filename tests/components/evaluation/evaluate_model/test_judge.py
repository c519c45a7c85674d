"""The pairwise judge against scripted OpenAI-compatible judges on localhost: both orders asked, a verdict kept only
when they agree, win rate with its interval, agreement with human labels, the API key from the environment, and a
judge that is down failing the evaluation with what went wrong."""

import json
import socket

import pytest
from recording_server import RecordingServer

from kfp_llmops.components.evaluation.evaluate_model import core, judge
from kfp_llmops.components.evaluation.regression_gate.core import GateConfig, decide
from kfp_llmops.configs import JudgeConfig
from kfp_llmops.errors import ConfigError, UserInputError
from kfp_llmops.modeling import load_causal_lm


def answers_of(prompt: str) -> tuple[str, str]:
    a = prompt.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
    b = prompt.split("Answer B:\n", 1)[1].split("\n\nBetter answer", 1)[0]
    return a, b


def chat(text: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def fair(req):
    """Prefers the answer that says 'good'; a tie when both or neither do."""
    a, b = answers_of(req.body["messages"][0]["content"])
    return 200, chat("A" if "good" in a and "good" not in b else "B." if "good" in b and "good" not in a else "Tie")


def rows(answers):
    return [{"index": k, "instruction": f"question {k}", "reference": "ref", "answer": a} for k, a in enumerate(answers)]


CANDIDATE = rows(["good one", "good two", "same", "bad four"])
PRODUCTION = rows(["bad one", "bad two", "same", "good four"])


def run(url, **kwargs):
    return judge.judge(CANDIDATE, PRODUCTION, JudgeConfig(url=url, model="judge-1", **kwargs), "production",
                       resamples=200, seed=0)


def test_both_orders_are_asked_and_the_win_rate_counts_ties_half():
    with RecordingServer(fair) as server:
        got = run(server.url + "/v1")
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 8  # 4 pairs, 2 orders each
    assert server.requests[0].body["model"] == "judge-1" and server.requests[0].body["temperature"] == 0
    assert [v["verdict"] for v in got["verdicts"]] == ["win", "win", "tie", "loss"]
    assert (got["wins"], got["ties"], got["losses"], got["win_rate"]) == (2, 1, 1, 0.625)
    assert got["ci_low"] <= 0.625 <= got["ci_high"] and got["position_consistency"] == 1.0 and got["invalid"] == 0


def test_a_judge_that_always_picks_the_first_answer_decides_nothing():
    with RecordingServer(lambda req: (200, chat("A"))) as server:
        got = run(server.url)
    assert [v["verdict"] for v in got["verdicts"]] == ["tie"] * 4  # the orders disagree on every pair
    assert got["win_rate"] == 0.5 and got["position_consistency"] == 0.0
    with RecordingServer(lambda req: (200, chat("A"))) as server:
        one_order = run(server.url, both_orders=False)
    assert one_order["win_rate"] == 1.0 and len(server.requests) == 4  # what the second order is there to cancel


def test_replies_without_a_verdict_are_counted_and_tied():
    with RecordingServer(lambda req: (200, chat("I cannot decide."))) as server:
        got = run(server.url)
    assert got["invalid"] == 4 and got["ties"] == 4


def test_agreement_with_human_labels(tmp_path):
    labels = tmp_path / "labels.jsonl"
    pairs = [("good", "bad", "A"), ("bad", "good", "B"), ("good", "good", "tie"), ("bad", "good", "A")]  # the last: no
    labels.write_text("".join(json.dumps({"instruction": "q", "answer_a": a, "answer_b": b, "label": label}) + "\n"
                              for a, b, label in pairs))
    with RecordingServer(fair) as server:
        got = run(server.url, human_labels=str(labels))
    assert (got["human_agreement"], got["human_labels"]) == (0.75, 4)


def test_the_api_key_comes_from_the_environment(monkeypatch):
    with RecordingServer(fair) as server:
        with pytest.raises(UserInputError, match="api_key_env names JUDGE_KEY, which is not set"):
            run(server.url, api_key_env="JUDGE_KEY")
        monkeypatch.setenv("JUDGE_KEY", "sk-test")
        run(server.url, api_key_env="JUDGE_KEY")
    assert server.requests[-1].headers["authorization"] == "Bearer sk-test"


def test_a_judge_that_is_down_or_not_a_chat_endpoint_fails_the_evaluation():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(UserInputError, match=rf"the judge at http://127.0.0.1:{port}/v1/chat/completions did not answer "
                                             r"\(ConnectionError: .*rather than pass without a judgment"):
        run(f"http://127.0.0.1:{port}/v1")
    with RecordingServer(lambda req: (500, {"error": "overloaded"})) as server, \
            pytest.raises(UserInputError, match=r"did not answer \(HTTPError: 500"):
        run(server.url)
    with RecordingServer(lambda req: (200, {"text": "A"})) as server, \
            pytest.raises(UserInputError, match="answered with no chat completion"):
        run(server.url)


def test_judge_config_mistakes_are_named():
    with pytest.raises(ConfigError, match="JudgeConfig.url must be an http"):
        JudgeConfig(url="judge.example.com", model="j")
    with pytest.raises(ConfigError, match="JudgeConfig.model"):
        JudgeConfig(url="http://judge/v1")
    with pytest.raises(ConfigError, match=r"JudgeConfig.prompt must contain \['\{answer_b\}'\]"):
        JudgeConfig(prompt="{instruction} {answer_a}")
    with pytest.raises(ConfigError, match="EvalConfig.judge: unknown field"):
        core.EvalConfig.from_dict({"judge": {"urls": "http://x"}})


def test_the_gate_needs_the_judge_to_prefer_the_candidate():
    with RecordingServer(fair) as server:
        got = run(server.url)
    comp = {"exact_match": {"candidate": 0.6, "baseline": 0.5, "delta": 0.1, "ci_low": 0.05, "ci_high": 0.15},
            "latency_p95_ms": {"candidate": 20.0, "baseline": 20.0, "ratio": 1.0, "ci_low": 0.9, "ci_high": 1.1},
            "perplexity": {"candidate": 2.0, "baseline": 2.0, "ratio": 1.0}}
    comps = {"base": dict(comp), "production": {**comp, "judge": got}}
    assert decide(comps, GateConfig(min_win_rate=0.6)).passed
    blocked = decide(comps, GateConfig(min_win_rate=0.7))
    [check] = blocked.blocking
    assert check.metric == "judge_win_rate" and check.baseline == "production"
    assert "judge judge-1: candidate wins 2, ties 1, loses 1 of 4 (win rate 0.6250" in check.reason
    with pytest.raises(UserInputError, match="min_win_rate needs the pairwise judge"):
        decide({"base": comp}, GateConfig(min_win_rate=0.5))


def test_the_judge_runs_inside_the_evaluation_against_the_base_when_there_is_no_production(base_model, tokenizer,
                                                                                          demo_assets):
    from kfp_llmops.datasets import instruction_pairs, read_jsonl

    pairs = instruction_pairs(read_jsonl(demo_assets / "eval.jsonl"))[:6]
    with RecordingServer(lambda req: (200, chat("tie"))) as server:
        cfg = core.EvalConfig.from_dict({"latency_requests": 2, "latency_tokens": 2, "bootstrap_resamples": 50,
                                         "safety": False, "judge": {"url": server.url, "model": "j", "max_examples": 3}})
        model = load_causal_lm(base_model)
        report = core.evaluate_all(model, {"base": model}, tokenizer, pairs, cfg)
    assert report["comparisons"]["base"]["judge"]["against"] == "base" and len(server.requests) == 6
    flat = core.flat_metrics(report)
    assert flat["base.judge.win_rate"] == 0.5 and flat["base.judge.ties"] == 3
    from kfp_llmops.components.evaluation.evaluate_model.report import render_html

    page = render_html(report)
    assert "<h2>Pairwise judge: candidate vs base</h2>" in page and "wins 0, ties 3, losses 0" in page
