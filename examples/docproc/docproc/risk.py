"""The risk stage: find sensitive content in a document and grade it low / medium / high.

Detection (:func:`detect`) runs precompiled patterns in a fixed order and keeps
only candidates that pass their validator; a span already claimed by an earlier
detector is never reported again (an IBAN's digits are not also a card):

====  ===========  ==========================================================
order type         pattern and validator
====  ===========  ==========================================================
1     secret       PEM ``-----BEGIN ... PRIVATE KEY-----`` blocks (public keys
                   and certificates are not secrets)
2     secret       AWS access key ids ``AKIA``/``ASIA`` + 16 base-32 chars;
                   GitHub tokens ``ghp_/gho_/ghu_/ghs_/ghr_`` + 36, ``github_pat_``
3     secret       ``api_key = value``-style assignments (api key, secret, token,
                   password, client secret...): value of 16+ chars, two of lower
                   case / upper case / digits, Shannon entropy >= 3.5 bits/char
4     iban         ISO 13616: known country, exact length, mod-97 == 1
5     card         13-19 digits (one separator style, not inside a longer run of
                   digit groups or an IBAN-shaped string), Luhn-valid, Visa /
                   Mastercard / Amex / Discover prefix and length
6     national_id  US SSN ``123-45-6789`` (SSA area/group/serial rules); Spanish
                   DNI ``12345678Z`` and NIE ``X1234567L`` (control letter)
7     phone        international ``+CC ...`` (8-15 digits, E.164), North American
                   ``(415) 555-0132`` / ``415-555-0132``, French ``01 42 68 53 00``;
                   never part of a longer digit run
8     email        RFC 5322 dot-atom local part, dotted domain with a letter TLD
====  ===========  ==========================================================

Grading (:func:`grade`) is a noisy-OR over per-criterion scores: criterion *c*
with weight *w* and *n* findings scores ``1 - (1 - w)**n``, the document scores
``1 - prod(1 - s_c)``. Weights: secret 0.9, card 0.9, national_id 0.5,
iban 0.5, email 0.1, phone 0.1, and a sensitive topic (health, finance, legal,
hr) 0.15. Level: any secret or card, or score >= 0.8 -> ``high``; score >= 0.3
-> ``medium``; else ``low``. So one ID or IBAN is medium, three IDs are high,
one to three contacts are low, four contacts (or two in a health record) medium.

:func:`assess` returns the grade with offsets only: the values themselves never
leave this module, because the result is stored as the document's metadata.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from docproc.checksums import (
    IBAN_LENGTHS,
    iban_valid,
    luhn_valid,
    nie_valid,
    shannon_entropy,
    ssn_valid,
)

__all__ = [
    "LEVELS",
    "SENSITIVE_TOPICS",
    "TYPES",
    "WEIGHTS",
    "Finding",
    "assess",
    "assess_findings",
    "detect",
    "grade",
]

TYPES: Final = ("email", "phone", "card", "iban", "national_id", "secret")
LEVELS: Final = ("low", "medium", "high")
WEIGHTS: Final[Mapping[str, float]] = {
    "secret": 0.9,
    "card": 0.9,
    "national_id": 0.5,
    "iban": 0.5,
    "email": 0.1,
    "phone": 0.1,
}
SENSITIVE_TOPICS: Final = frozenset({"health", "finance", "legal", "hr"})
TOPIC_WEIGHT: Final = 0.15
HIGH_SCORE: Final = 0.8
MEDIUM_SCORE: Final = 0.3
MIN_SECRET_ENTROPY: Final = 3.5


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive item: its type, ``text[start:end]`` and a finer ``kind``."""

    type: str
    start: int
    end: int
    value: str
    kind: str = ""


# --- patterns (compiled once) -----------------------------------------------------------

# Each pattern starts with a character class (lookbehinds come after the first
# character) so the regex engine can skip ahead to candidate characters quickly.
_A = re.ASCII
_PEM = re.compile(
    r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY)-----"
    r"[A-Za-z0-9+/=\s:,-]*?-----END \1-----",
    _A,
)
_AWS = re.compile(r"A(?<![A-Za-z0-9]A)(?:KIA|SIA)[A-Z2-7]{16}(?![A-Za-z0-9])", _A)
_GITHUB = re.compile(
    r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36}|ithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})"
    r"(?![A-Za-z0-9_])",
    _A,
)
_GITHUB_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")
_ASSIGN_VALUE = re.compile(r"[:=][ \t]*[\"']?(?P<v>[A-Za-z0-9_\-+/=.]{16,})", _A)
_ASSIGN_NAME = re.compile(
    r"(?<![A-Za-z0-9])(?:[a-z0-9]+[_-])*"
    r"(?:api[_-]?key|secret(?:[_-]?access)?(?:[_-]?key)?|(?:access|auth|bearer)[_-]?token"
    r"|token|passw(?:or)?d|client[_-]?secret)[\"']?[ \t]*\Z",
    _A | re.IGNORECASE,
)
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9_][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]{1,4}){2,8}\b", _A)
_CARD = re.compile(
    r"[0-9](?<![0-9+.,-][0-9])(?<![0-9][ -][0-9])(?:[ -]?[0-9]){12,18}(?![,-]?[0-9]|[. ][0-9])",
    _A,
)
_SSN = re.compile(r"([0-9]{3})(?<![0-9-][0-9]{3})([- ])([0-9]{2})\2([0-9]{4})(?![0-9-])", _A)
_DNI = re.compile(
    r"[0-9XYZ](?<![A-Za-z0-9-][0-9XYZ])(?:(?<=[0-9])[0-9]{7}|(?<=[XYZ])-?[0-9]{7})-?[A-Z]"
    r"(?![A-Za-z0-9])",
    _A,
)
_PHONE_INTL = re.compile(
    r"\+(?<![\w+]\+)[0-9]{1,3}(?:[ .-]?\(0\))?(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,4})){1,6}"
    r"(?![ .-]?[0-9])",
    _A,
)
_PHONE_NANP = re.compile(
    r"[(2-9](?<![\w+(][(2-9])(?<![0-9][ .-][(2-9])"
    r"(?:(?<=\()[2-9][0-9]{2}\) ?|(?<=[2-9])[0-9]{2}([ .-]))[2-9][0-9]{2}([ .-])[0-9]{4}"
    r"(?![ .-]?[0-9])",
    _A,
)
_PHONE_FR = re.compile(
    r"0(?<![\w+]0)(?<![0-9][ .-]0)[1-9]([ .])[0-9]{2}(?:\1[0-9]{2}){3}(?![ .-]?[0-9])", _A
)
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])",
    _A,
)
_EMAIL_REACH = 64 + 1 + 255  # RFC 5321 limits: local part 64, domain 255
_SEPARATORS = re.compile(r"[ -]")


# --- validators: each yields the findings of one pattern ---------------------------------


def _pem(text: str) -> Iterator[Finding]:
    for m in _PEM.finditer(text):
        yield Finding("secret", m.start(), m.end(), m.group(), "private_key")


def _tokens(text: str) -> Iterator[Finding]:
    if "AKIA" in text or "ASIA" in text:
        for m in _AWS.finditer(text):
            yield Finding("secret", m.start(), m.end(), m.group(), "aws_access_key_id")
    if any(prefix in text for prefix in _GITHUB_PREFIXES):
        for m in _GITHUB.finditer(text):
            yield Finding("secret", m.start(), m.end(), m.group(), "github_token")


def _looks_random(value: str) -> bool:
    """High entropy and at least two character classes: not a placeholder or a word."""
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
    )
    return classes >= 2 and shannon_entropy(value) >= MIN_SECRET_ENTROPY


def _assigned(text: str) -> Iterator[Finding]:
    m = _ASSIGN_VALUE.search(text)
    while m is not None:
        if not _ASSIGN_NAME.search(text, max(0, m.start() - 64), m.start()):
            # "note: api_key=..." -- the value after "note:" may swallow the real "=".
            m = _ASSIGN_VALUE.search(text, m.start() + 1)
            continue
        value = m.group("v").rstrip(".")
        if len(value) >= 16 and _looks_random(value):
            yield Finding("secret", m.start("v"), m.start("v") + len(value), value, "api_key")
        m = _ASSIGN_VALUE.search(text, m.end())


def _iban(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        length = IBAN_LENGTHS.get(raw[:2])
        if length is None:
            continue
        end = _end_after_alnum(raw, length)
        if end is None:
            continue
        compact = raw[:end].replace(" ", "")
        if iban_valid(compact):
            yield Finding("iban", m.start(), m.start() + end, raw[:end], raw[:2])


def _end_after_alnum(raw: str, count: int) -> int | None:
    """Index just past the ``count``-th alphanumeric of ``raw`` if a group ends there."""
    seen = 0
    for i, ch in enumerate(raw):
        if ch != " ":
            seen += 1
            if seen == count:
                return i + 1 if i + 1 == len(raw) or raw[i + 1] == " " else None
    return None


def _card_brand(digits: str) -> str | None:
    n, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if n == 16 and (51 <= two <= 55 or 2221 <= four <= 2720):
        return "mastercard"
    if n == 15 and two in (34, 37):
        return "amex"
    if n in (16, 19) and (four == 6011 or two == 65):
        return "discover"
    return None


def _cards(text: str) -> Iterator[Finding]:
    # Digits inside an IBAN-shaped string (valid or not) belong to that string.
    ibans = _Spans()
    for m in _IBAN.finditer(text):
        ibans.add(m.start(), m.end())
    for m in _CARD.finditer(text):
        if ibans.overlaps(m.start(), m.end()):
            continue
        raw = m.group()
        if len(set(_SEPARATORS.findall(raw))) > 1:
            continue  # one separator style per number
        digits = _SEPARATORS.sub("", raw)
        brand = _card_brand(digits)
        if brand and luhn_valid(digits):
            yield Finding("card", m.start(), m.end(), raw, brand)


def _national_ids(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield Finding("national_id", m.start(), m.end(), m.group(), "ssn")
    for m in _DNI.finditer(text):
        compact = m.group().replace("-", "")
        if nie_valid(compact):
            kind = "dni" if compact[0].isdigit() else "nie"
            yield Finding("national_id", m.start(), m.end(), m.group(), kind)


def _phones(text: str) -> Iterator[Finding]:
    for m in _PHONE_INTL.finditer(text):
        digits = sum(c.isdigit() for c in m.group())
        if 8 <= digits <= 15:
            yield Finding("phone", m.start(), m.end(), m.group(), "international")
    for m in _PHONE_NANP.finditer(text):
        if m.group(1) is None or m.group(1) == m.group(2):
            yield Finding("phone", m.start(), m.end(), m.group(), "nanp")
    for m in _PHONE_FR.finditer(text):
        yield Finding("phone", m.start(), m.end(), m.group(), "fr")


def _emails(text: str) -> Iterator[Finding]:
    # Search only around each "@": scanning every word for a local part is the slow part.
    at, done = text.find("@"), 0
    while at >= 0:
        lo, hi = max(done, at - 64), min(len(text), at + _EMAIL_REACH)
        m = _EMAIL.search(text, lo, hi)
        while m is not None and m.start() <= at:
            if m.end() > at:
                yield Finding("email", m.start(), m.end(), m.group(), "email")
                done = m.end()
                break
            m = _EMAIL.search(text, m.end(), hi)
        at = text.find("@", max(at + 1, done))


_DETECTORS: Final[tuple[Callable[[str], Iterator[Finding]], ...]] = (
    _pem,
    _tokens,
    _assigned,
    _iban,
    _cards,
    _national_ids,
    _phones,
    _emails,
)


class _Spans:
    """Non-overlapping ``[start, end)`` spans kept sorted, for overlap checks in O(log n)."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start)
        if i and self._ends[i - 1] > start:
            return True
        return i < len(self._starts) and self._starts[i] < end

    def add(self, start: int, end: int) -> None:
        """Add a span; one overlapping an earlier span is ignored (the earlier one wins)."""
        if not self.overlaps(start, end):
            i = bisect.bisect_right(self._starts, start)
            self._starts.insert(i, start)
            self._ends.insert(i, end)


def detect(text: str) -> list[Finding]:
    """Every validated sensitive item in ``text``, in text order, spans never overlapping."""
    claimed = _Spans()
    found: list[Finding] = []
    for detector in _DETECTORS:
        for f in detector(text):
            if not claimed.overlaps(f.start, f.end):
                claimed.add(f.start, f.end)
                found.append(f)
    found.sort(key=lambda f: f.start)
    return found


def grade(counts: Mapping[str, int], topic: str | None = None) -> dict[str, Any]:
    """The level, score and per-criterion scores for the given finding counts and topic."""
    criteria: dict[str, dict[str, Any]] = {}
    keep = 1.0
    for kind in TYPES:
        n = counts.get(kind, 0)
        score = 1.0 - (1.0 - WEIGHTS[kind]) ** n
        criteria[kind] = {"count": n, "score": round(score, 4)}
        keep *= 1.0 - score
    sensitive_topic = topic in SENSITIVE_TOPICS
    topic_score = TOPIC_WEIGHT if sensitive_topic else 0.0
    criteria["topic"] = {"count": int(sensitive_topic), "score": topic_score, "topic": topic}
    keep *= 1.0 - topic_score
    score = 1.0 - keep
    if counts.get("secret", 0) or counts.get("card", 0) or score >= HIGH_SCORE - 1e-9:
        level = "high"
    elif score >= MEDIUM_SCORE - 1e-9:
        level = "medium"
    else:
        level = "low"
    return {"level": level, "score": round(score, 4), "criteria": criteria}


def assess(text: str, semantic: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Grade ``text``: level, score, criteria and finding offsets -- never the values."""
    return assess_findings(detect(text), semantic)


def assess_findings(
    findings: Iterable[Finding], semantic: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`assess` for findings already detected (offsets only in the result)."""
    findings = list(findings)
    counts = dict.fromkeys(TYPES, 0)
    for f in findings:
        counts[f.type] += 1
    topic = semantic.get("topic") if semantic is not None else None
    result = grade(counts, topic if isinstance(topic, str) else None)
    result["findings"] = [
        {"type": f.type, "kind": f.kind, "start": f.start, "end": f.end} for f in findings
    ]
    return result
