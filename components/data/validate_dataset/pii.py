"""Finds personal data and secrets in text, offline: emails, phone numbers (``phonenumbers``), credit cards
(Luhn check from ``python-stdnum``), IP addresses (``ipaddress``), and API keys and secrets (the detectors of Yelp's
``detect-secrets``, plus a few token formats it lacks). Each finding has a kind and a span, so it can be masked."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from kfp_llmops.configs import PII_KINDS


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_EXTRA_SECRETS = [
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),  # Google API key
    re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}\b"),  # OpenAI keys, new formats
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),  # Hugging Face token
    re.compile(r"(?i)\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token)\b\s*[:=]\s*['\"]?[A-Za-z0-9_\-./+]{16,}"),
]
_KEYWORD_HINT = re.compile(r"(?i)pass(?:word|wd)?|secret|token|api[_-]?key|pwd|credential")


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str


@lru_cache(maxsize=1)
def _secret_detectors():
    """detect-secrets' token patterns (their whole matches are the findings) and its keyword detector."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    skip = ("HighEntropy", "IPPublic")  # entropy detectors flag ordinary words; IPs have their own kind here
    classes = [cls for cls in get_mapping_from_secret_type_to_class().values() if not any(s in cls.__name__ for s in skip)]
    patterns = [p for cls in classes for p in getattr(cls(), "denylist", ())] + _EXTRA_SECRETS
    keyword = next(cls() for cls in classes if cls.__name__ == "KeywordDetector")
    return patterns, keyword


def find_secrets(text: str) -> list[Finding]:
    patterns, keyword = _secret_detectors()
    found = [Finding("secret", m.start(), m.end(), m.group()) for rx in patterns for m in rx.finditer(text)]
    if _KEYWORD_HINT.search(text):
        for secret in keyword.analyze_line(filename="dataset.txt", line=text, line_number=1):
            value = secret.secret_value or ""
            start = text.find(value) if value else -1
            if start >= 0:
                found.append(Finding("secret", start, start + len(value), value))
    return found


def find_phones(text: str, region: str = "US") -> list[Finding]:
    import phonenumbers

    if sum(ch.isdigit() for ch in text) < 7:
        return []
    return [Finding("phone", m.start, m.end, m.raw_string)
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)]


def find_cards(text: str) -> list[Finding]:
    from stdnum import luhn

    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            out.append(Finding("credit_card", m.start(), m.end(), m.group()))
    return out


def find_ips(text: str) -> list[Finding]:
    out = []
    for rx in (_IPV4, _IPV6):
        for m in rx.finditer(text):
            candidate = m.group()
            if rx is _IPV6 and candidate.count(":") < 2:
                continue
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            out.append(Finding("ip_address", m.start(), m.end(), candidate))
    return out


def find_pii(text: str, kinds=PII_KINDS, phone_region: str = "US") -> list[Finding]:
    """Every finding in ``text``, by position; overlapping findings keep the longest."""
    if not isinstance(text, str) or not text:
        return []
    found: list[Finding] = []
    if "email" in kinds and "@" in text:
        found += [Finding("email", m.start(), m.end(), m.group()) for m in _EMAIL.finditer(text)]
    if "credit_card" in kinds:
        found += find_cards(text)
    if "ip_address" in kinds:
        found += find_ips(text)
    if "secret" in kinds:
        found += find_secrets(text)
    if "phone" in kinds:
        taken = [(f.start, f.end) for f in found]
        found += [f for f in find_phones(text, phone_region) if not any(s <= f.start < e or s < f.end <= e for s, e in taken)]
    return _longest_first(found)


def _longest_first(found: list[Finding]) -> list[Finding]:
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (-(f.end - f.start), f.start)):
        if not any(f.start < k.end and k.start < f.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def mask(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding replaced by ``[KIND]``."""
    out, last = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        out += [text[last:f.start], f"[{f.kind.upper()}]"]
        last = f.end
    return "".join(out) + text[last:]
