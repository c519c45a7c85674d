"""Screening: duplicates, contamination, drift and PII actions, on the demo data with seeded problems."""

import json
import random

import pytest

from kfp_llmops.components.data.validate_dataset import core
from kfp_llmops.components.data.validate_dataset.contamination import contaminated_rows
from kfp_llmops.components.data.validate_dataset.dedup import exact_duplicates, near_duplicates
from kfp_llmops.configs import ScreeningConfig
from kfp_llmops.datasets import read_jsonl, read_table
from kfp_llmops.errors import ConfigError


@pytest.fixture(scope="module")
def train_rows(demo_assets):
    return [json.loads(line) for line in (demo_assets / "train.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def eval_rows(demo_assets):
    return [json.loads(line) for line in (demo_assets / "eval.jsonl").read_text().splitlines()]


def _flagged(result, check):
    [c] = [c for c in result.checks if c.check == check]
    return c


def test_every_seeded_near_duplicate_is_caught_and_dropped(tmp_path, write_jsonl):
    rng = random.Random(5)
    base = [f"Explain step {i} of the {w} pipeline: it reads the {w} data, checks it and writes a report for run {i}."
            for i, w in enumerate(rng.choices(["alpha", "beta", "gamma", "delta"], k=60))]
    rows = [{"instruction": t, "response": f"answer {i} " + " ".join(rng.choice("abcdefgh") for _ in range(20))} for i, t in enumerate(base)]
    seeded = []
    for k in range(10):  # a near copy: same text with one word changed
        src = dict(rows[k * 5])
        src["response"] = src["response"].rsplit(" ", 1)[0] + " zzz"
        rows.append(src)
        seeded.append(len(rows))  # its line number
    rows.append(dict(rows[3]))  # and one exact copy
    result, cleaned = core.validate(read_table(str(write_jsonl(tmp_path / "d.jsonl", rows))))
    near = _flagged(result, "screen_near_duplicates")
    exact = _flagged(result, "screen_exact_duplicates")
    assert near.unexpected_count == 10 and exact.unexpected_count == 1
    assert sorted(result.dropped_lines) == seeded + [len(rows)]
    assert len(cleaned) == 60 and result.success  # dropping is a fix, not a failure
    assert near.examples[0] == "same as line 1"


def test_near_duplicates_respect_the_threshold():
    texts = ["one two three four five six seven eight nine ten", "one two three four five six seven eight nine eleven"]
    assert near_duplicates(texts, threshold=0.5) == {1: 0}
    assert near_duplicates(texts, threshold=0.95) == {}
    assert exact_duplicates(["A b", "a  B!", "c"]) == {1: 0}


def _datasketch_lsh_row_by_row(texts, threshold, num_perm=128, shingle_size=3, seed=1):
    """The reference: datasketch's MinHashLSH queried, then filled, one row at a time (what near_duplicates did
    before it kept its index in numpy)."""
    from datasketch import MinHash, MinHashLSH

    from kfp_llmops.components.data.validate_dataset.dedup import shingles

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sets = [shingles(t, shingle_size) for t in texts]
    out = {}
    for i, sig in enumerate(MinHash.bulk([list(s) for s in sets], num_perm=num_perm, seed=seed)):
        matches = [int(c) for c in lsh.query(sig) if len(sets[i] & sets[int(c)]) / len(sets[i] | sets[int(c)]) >= threshold]
        if matches:
            out[i] = min(matches)
        else:
            lsh.insert(str(i), sig)
    return out


@pytest.mark.parametrize("threshold", [0.5, 0.85])
def test_near_duplicates_match_datasketch_lsh_in_bounded_memory(threshold):
    """Clusters of near copies (chains too: a copy of a copy), exact copies and unrelated rows, over several chunks."""
    rng = random.Random(threshold)
    vocab = [f"w{k}" for k in range(400)]
    texts = []
    for _ in range(900):
        if texts and rng.random() < 0.4:
            words = rng.choice(texts).split()
            for _ in range(rng.randint(0, 3)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choices(vocab, k=rng.randint(8, 30))))
    expected = _datasketch_lsh_row_by_row(texts, threshold)
    assert len(expected) > 80
    assert near_duplicates(texts, threshold=threshold, chunk_rows=128) == expected


def test_every_seeded_eval_copy_is_caught(tmp_path, write_jsonl, train_rows, eval_rows):
    rows = list(train_rows[:300])
    seeded = []
    for k in range(0, 100, 10):
        rows.insert(k * 3, dict(eval_rows[k]))
    seeded = [i + 1 for i, r in enumerate(rows) if r in eval_rows]
    result, cleaned = core.validate(read_table(str(write_jsonl(tmp_path / "d.jsonl", rows))),
                                    eval_table=read_table(str(write_jsonl(tmp_path / "e.jsonl", eval_rows))))
    check = _flagged(result, "screen_eval_contamination")
    assert check.unexpected_count == 10 == len(seeded)
    assert result.dropped_lines == seeded
    assert not any(r in eval_rows for r in cleaned.frame.to_dict(orient="records"))


def test_long_texts_are_matched_on_13_grams():
    eval_text = " ".join(f"w{i}" for i in range(30))
    inside = "prefix words here " + " ".join(f"w{i}" for i in range(5, 20)) + " suffix"
    assert contaminated_rows([inside, "w1 w2 w3"], [eval_text], n=13) == {0: 0}


def test_contamination_can_fail_the_validation(tmp_path, write_jsonl, eval_rows):
    rows = [{"instruction": "q", "response": "a"}, dict(eval_rows[0])]
    screening = ScreeningConfig.from_dict({"contamination": {"action": "fail"}})
    result, _ = core.validate(read_table(str(write_jsonl(tmp_path / "d.jsonl", rows))), screening=screening,
                              eval_table=read_table(str(write_jsonl(tmp_path / "e.jsonl", eval_rows))))
    assert not result.success
    assert "[critical] screen_eval_contamination failed on field 'all text': 1 row(s); line(s) 2; value(s) ['overlaps eval line 1']" in result.summary()


def test_no_drift_against_itself_and_drift_against_another_task(demo_assets, tmp_path, write_jsonl, train_rows):
    table = read_jsonl(demo_assets / "train.jsonl")
    result, _ = core.validate(table, reference=read_jsonl(demo_assets / "train.jsonl"))
    assert result.drift and max(result.drift.values()) == pytest.approx(0.0, abs=1e-9)
    other = [{"instruction": f"Summarize the following report number {i} in one sentence please.",
              "response": f"The report {i} says the pipeline ran."} for i in range(500)]
    result, _ = core.validate(table, reference=read_table(str(write_jsonl(tmp_path / "ref.jsonl", other))))
    drifted = [c for c in result.checks if c.check == "screen_drift_psi" and not c.success]
    assert {c.field for c in drifted} >= {"instruction.chars", "word_frequencies"}
    assert all(c.severity == "warning" for c in drifted) and result.success  # reported, not blocking, by default
    assert result.metrics()["drift_psi.word_frequencies"] > 0.2


def test_pii_actions_fail_drop_and_mask(tmp_path, write_jsonl):
    rows = [{"instruction": "write to jane@example.com", "response": "ok"}, {"instruction": "hi", "response": "hello"},
            {"instruction": "my card is 4111 1111 1111 1111", "response": "noted"}]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    failed, _ = core.validate(read_table(path))
    assert not failed.success  # the default action is fail
    check = _flagged(failed, "screen_pii_email")
    assert check.lines == [1] and check.examples == ["instruction: write to [EMAIL]"]  # the report never shows the PII
    dropped, kept = core.validate(read_table(path), screening=ScreeningConfig.from_dict({"pii": {"action": "drop"}}))
    assert dropped.success and dropped.dropped_lines == [1, 3] and len(kept) == 1
    masked, out = core.validate(read_table(path), screening=ScreeningConfig.from_dict({"pii": {"action": "mask"}}))
    assert masked.success and masked.masked_rows == 2
    assert list(out.frame["instruction"]) == ["write to [EMAIL]", "hi", "my card is [CREDIT_CARD]"]


def test_chat_contents_are_masked(tmp_path, write_jsonl):
    rows = [{"messages": [{"role": "user", "content": "call 212-555-0199 or mail a@b.io"}, {"role": "assistant", "content": "ok"}]}]
    result, out = core.validate(read_table(str(write_jsonl(tmp_path / "c.jsonl", rows))),
                                screening=ScreeningConfig.from_dict({"pii": {"action": "mask"}}))
    assert result.masked_rows == 1
    assert out.frame["messages"][0][0]["content"].endswith("or mail [EMAIL]")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"pii": {"action": "explode"}}, r"ScreeningConfig.pii.action must be one of"),
        ({"pii": {"kinds": ["ssn"]}}, r"ScreeningConfig.pii.kinds: unknown \['ssn'\]"),
        ({"duplicates": {"threshold": 0}}, r"ScreeningConfig.duplicates.threshold"),
        ({"drift": {"action": "drop"}}, r"ScreeningConfig.drift.action must be one of \('fail', 'report'\)"),
        ({"dedup": {}}, r"ScreeningConfig: unknown field\(s\) \['dedup'\]"),
        ({"pii": {"mode": "x"}}, r"ScreeningConfig.pii: unknown field\(s\) \['mode'\]"),
    ],
)
def test_screening_config_errors_name_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        ScreeningConfig.from_dict(values)
