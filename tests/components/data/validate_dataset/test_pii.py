"""PII and secret detection on a seeded fixture: recall >= 0.95 on 100 planted strings, <= 1 % false positives."""

import random
import string

import pytest

from kfp_llmops.components.data.validate_dataset.pii import find_pii, mask


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = [int(d) for d in body][::-1]
    total = sum(d if i % 2 else sum(divmod(2 * d, 10)) for i, d in enumerate(digits))
    return body + str((10 - total % 10) % 10)


def _token(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


AREA_CODES = [212, 213, 202, 206, 303, 305, 312, 404, 415, 503, 512, 617, 646, 702, 713, 718, 801, 917, 949, 971]


def planted(seed: int = 7) -> list[tuple[str, str, str]]:
    """(kind, planted value, sentence) x 100: 20 of each kind, in varied sentences and formats."""
    rng = random.Random(seed)
    an = string.ascii_letters + string.digits
    out = []
    for i in range(20):
        user = rng.choice(["john.doe", "a.smith", "maria_g", "dev+ops", "x9"]) + str(i)
        domain = rng.choice(["example.com", "mail.co.uk", "corp.internal.org", "uni.edu"])
        out.append(("email", f"{user}@{domain}", "Please contact {} for access."))
        area = rng.choice(AREA_CODES)
        mid, last = rng.randint(200, 989), rng.randint(1000, 9999)
        fmt = rng.choice(["({a}) {m}-{l}", "{a}-{m}-{l}", "+1 {a} {m} {l}", "{a}.{m}.{l}"])
        out.append(("phone", fmt.format(a=area, m=mid, l=last), "Call me at {} tomorrow."))
        prefix, length = rng.choice([("4", 16), ("51", 16), ("37", 15), ("6011", 16)])
        card = _luhn_complete(prefix, length, rng)
        card = " ".join(card[k:k + 4] for k in range(0, len(card), 4)) if i % 2 else card
        out.append(("credit_card", card, "My card number is {} thanks."))
        ip = (".".join(str(rng.randint(1, 254)) for _ in range(4)) if i % 4
              else ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8)))
        out.append(("ip_address", ip, "The server at {} is down."))
        secret = rng.choice([
            lambda: "AKIA" + _token(rng, string.ascii_uppercase + string.digits, 16),
            lambda: "ghp_" + _token(rng, an, 36),
            lambda: "xoxb-" + _token(rng, string.digits, 12) + "-" + _token(rng, string.digits, 13) + "-" + _token(rng, an, 24),
            lambda: "sk_live_" + _token(rng, an, 24),
            lambda: "AIza" + _token(rng, an + "_-", 35),
            lambda: "sk-proj-" + _token(rng, an, 40),
            lambda: "hf_" + _token(rng, an, 34),
        ])()
        out.append(("secret", secret, "use the key {} in the config"))
    return [(kind, value, template.format(value)) for kind, value, template in out]


CLEAN = [
    "Version 3.11.7 was released on 2024-01-02 and costs $12,345.67 per year.",
    "The meeting is at 12:30:45 in room 101; bring 3 copies of the 250-page report.",
    "Order #123456789 shipped in 2 boxes weighing 4.5 kg and 12 lb.",
    "The ratio was 3:2:1, and the temperature reached 37.5 degrees.",
    "reverse: apple bird cake",
    "sort the list 9 4 7 1 and return 1 4 7 9",
    "def add(a, b): return a + b  # simple function",
    "The password field must not be empty and the token expires after 30 minutes.",
    "ISBN 978-3-16-148410-0 is printed on the back cover.",
    "In 1969, 600 million people watched the landing live.",
]


def clean_sentences(n: int = 1000, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    words = "the a model data train eval loss token batch step value result error file run cloud queue node".split()
    out = []
    for i in range(n):
        base = CLEAN[i % len(CLEAN)]
        extra = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        numbers = f" step {rng.randint(1, 10**6)} of {rng.randint(1, 10**6)}, lr {rng.random():.5f}, took {rng.randint(1, 999)} ms"
        out.append(f"{base} {extra}{numbers}.")
    return out


def test_recall_on_planted_pii_is_at_least_95_percent():
    cases = planted()
    assert len(cases) == 100
    missed = [(kind, value) for kind, value, text in cases if not any(f.kind == kind and value in text[f.start:f.end + 1] for f in find_pii(text))]
    recall = 1 - len(missed) / len(cases)
    assert recall >= 0.95, missed


@pytest.mark.parametrize("kind", ["email", "phone", "credit_card", "ip_address", "secret"])
def test_each_kind_is_found(kind):
    cases = [c for c in planted() if c[0] == kind]
    hits = sum(any(f.kind == kind for f in find_pii(text)) for _, _, text in cases)
    assert hits >= 18, f"{kind}: {hits}/20"


def test_false_positives_on_clean_text_are_at_most_one_percent():
    texts = clean_sentences()
    flagged = [t for t in texts if find_pii(t)]
    assert len(flagged) / len(texts) <= 0.01, flagged[:5]


def test_mask_replaces_each_finding_with_its_kind():
    text = "mail john@example.com, card 4111 1111 1111 1111, host 10.0.0.1"
    assert mask(text, find_pii(text)) == "mail [EMAIL], card [CREDIT_CARD], host [IP_ADDRESS]"
