"""A deterministic, labelled corpus shaped like the paper's dataset.

``generate(out, count=2745, seed=7)`` writes ``doc-00000.txt`` ... (UTF-8, LF line
ends) and ``labels.jsonl``, and returns the size statistics. Everything comes
from ``random.Random`` seeded per document with ``(seed, index)``, so the same
seed gives a byte-identical corpus, and document *i* does not depend on how many
documents were asked for.

Shape of a document:

- **Topic**: one of eight (finance, health, legal, hr, engineering, marketing,
  travel, science), uniformly; each has its own nouns, adjectives, verbs, teams
  and sentence templates (``docproc._vocab``), mixed with generic templates.
- **Language**: 90 % English; 10 % Spanish, French or German (a smaller grammar
  with topic nouns in that language).
- **Size**: a title, a small header, then paragraphs of 3-7 sentences until a
  target size drawn from a log-normal distribution (median about 3.6 KB,
  sigma 0.5, clipped to 0.8-16 KB), which gives a mean of about 4 KB. With
  ``large_share`` > 0 that share of documents instead targets 40-200 KB (the
  divide-and-conquer scenario).
- **Sensitive items** (``sensitive_share``, default 40 % of documents): 1-5
  items (3-12 in a large document) of the types the risk stage reports, drawn
  with topic-dependent weights (cards in finance and travel, IDs and IBANs in
  hr, secrets in engineering...), each in a carrier sentence:

  ===========  ================================================================
  type         planted values (all valid)
  ===========  ================================================================
  email        ``first.last@``, ``f.last@``, ``first_last42@``, ``+tag`` variants
  phone        North American ``(415) 555-0132`` / ``415-555-0132`` / ``+1 ...``;
               ``+44 20 7946 0958``, ``+34 612 34 56 78``, ``+49 30 12345678``,
               ``+49 (0)89 1234 5678``, ``+33 1 42 68 53 00``, ``01 42 68 53 00``
  card         Luhn-valid Visa (16), Mastercard (51-55 and 2221-2720), Amex (15),
               spaced, dashed or compact
  iban         mod-97-valid IBANs for DE, ES, FR, GB, IT, NL, BE, PT, CH,
               grouped by four or compact
  national_id  US SSN ``123-45-6789`` (SSA rules), Spanish DNI ``12345678Z`` and
               NIE ``X1234567L`` with their control letter
  secret       AWS access key id, GitHub token (``ghp_``, ``github_pat_``),
               ``api_key = <32-40 random chars>``-style assignments (also JSON
               members), PEM private key blocks (RSA / EC / OPENSSH)
  ===========  ================================================================

- **Decoys** (30 % of documents, independently): look-alikes that a good filter
  must not report: Luhn-invalid card numbers, IBANs with wrong check digits,
  SSNs with area 000/666/9xx, DNIs with the wrong letter, placeholder API keys,
  PEM *public* keys, redacted AWS keys, ``user@localhost``. Dates, times,
  versions and amounts in ordinary sentences add more digit runs.

``labels.jsonl`` has one JSON object per document: ``file``, ``bytes``,
``topic``, ``language``, ``large``, ``items`` (type, kind, exact value and its
character offsets), ``decoys`` (type, kind, value) and the expected ``risk``
level and ``score``: :func:`docproc.risk.grade` applied to the planted items
and the true topic.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from docproc import _vocab as V
from docproc.checksums import dni_letter, iban_check_digits, luhn_check_digit
from docproc.risk import LEVELS, TYPES, grade

__all__ = ["CorpusStats", "generate", "generate_document"]

TOPIC_NAMES = tuple(sorted(V.TOPICS))
SENSITIVE_SHARE = 0.4
DECOY_SHARE = 0.3
_MEDIAN_BYTES = 3600.0
_SIGMA = 0.5
_MIN_BYTES, _MAX_BYTES = 800, 16_000
_LARGE_MIN, _LARGE_MAX = 40_000, 200_000
_BASE_WEIGHTS = {"email": 3.0, "phone": 3.0, "card": 1.2, "iban": 1.2, "national_id": 1.2}
_BASE_WEIGHTS["secret"] = 1.0
_TOPIC_BOOST = {
    "finance": ("card", "iban"),
    "travel": ("card", "phone"),
    "hr": ("national_id", "iban"),
    "health": ("national_id", "phone"),
    "legal": ("national_id", "email"),
    "engineering": ("secret", "secret"),
    "marketing": ("email", "phone"),
    "science": ("email", "secret"),
}
_SLOT = re.compile(r"\{([A-Z]+[a-z]?[0-9]?)\}")
_A_AN = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")
_B32 = string.ascii_uppercase + "234567"
_B62 = string.ascii_letters + string.digits
_B64 = _B62 + "+/"
_ALNUM = string.ascii_uppercase + string.digits
_BBAN_LAYOUTS: dict[str, tuple[tuple[int, str], ...]] = {
    "DE": ((18, "n"),),
    "ES": ((20, "n"),),
    "FR": ((10, "n"), (11, "c"), (2, "n")),
    "GB": ((4, "a"), (14, "n")),
    "IT": ((1, "a"), (10, "n"), (12, "c")),
    "NL": ((4, "a"), (10, "n")),
    "BE": ((12, "n"),),
    "PT": ((21, "n"),),
    "CH": ((5, "n"), (12, "c")),
}
_MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """Sizes (UTF-8 bytes) and label counts of a generated corpus."""

    count: int
    seed: int
    total_bytes: int
    mean_bytes: float
    stdev_bytes: float
    min_bytes: int
    max_bytes: int
    p50_bytes: float
    p95_bytes: float
    sensitive_docs: int
    decoy_docs: int
    large_docs: int
    items: dict[str, int] = field(default_factory=dict)
    decoys: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    risk: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- values -----------------------------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return folded.lower().replace("'", "").replace(" ", "")


def _email(rng: random.Random) -> tuple[str, str]:
    first, last = _ascii(rng.choice(V.FIRST_NAMES)), _ascii(rng.choice(V.LAST_NAMES))
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first[0]}.{last}",
            f"{first}{last}",
            f"{first}_{last}{rng.randint(1, 99)}",
            f"{first}.{last}+{rng.choice(('billing', 'hr', 'travel', 'lab'))}",
        )
    )
    return f"{local}@{rng.choice(V.DOMAINS)}", "email"


def _phone(rng: random.Random) -> tuple[str, str]:
    area = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
    exch = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
    line = _digits(rng, 4)

    def pair() -> str:
        return _digits(rng, 2)

    formats = (
        (f"({area}) {exch}-{line}", "nanp"),
        (f"{area}-{exch}-{line}", "nanp"),
        (f"{area}.{exch}.{line}", "nanp"),
        (f"+1 {area}-{exch}-{line}", "nanp"),
        (f"+1 ({area}) {exch}-{line}", "nanp"),
        (f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}", "gb"),
        (f"+44 7{_digits(rng, 3)} {_digits(rng, 6)}", "gb"),
        (f"+34 6{_digits(rng, 2)} {pair()} {pair()} {pair()}", "es"),
        (f"+34 91 {_digits(rng, 3)} {pair()} {pair()}", "es"),
        (f"+49 30 {_digits(rng, 8)}", "de"),
        (f"+49 (0)89 {_digits(rng, 4)} {_digits(rng, 4)}", "de"),
        (f"+33 {rng.randint(1, 9)} {pair()} {pair()} {pair()} {pair()}", "fr"),
        (f"0{rng.randint(1, 9)} {pair()} {pair()} {pair()} {pair()}", "fr"),
    )
    return rng.choice(formats)


def _card_number(rng: random.Random) -> tuple[str, str]:
    brand = rng.choice(("visa", "visa", "mastercard", "mastercard", "amex"))
    if brand == "visa":
        payload = "4" + _digits(rng, 14)
    elif brand == "mastercard":
        prefix = str(rng.randint(51, 55)) if rng.random() < 0.7 else str(rng.randint(2221, 2720))
        payload = prefix + _digits(rng, 15 - len(prefix))
    else:
        payload = rng.choice(("34", "37")) + _digits(rng, 12)
    return payload + str(luhn_check_digit(payload)), brand


def _format_card(rng: random.Random, digits: str) -> str:
    groups = (
        [digits[:4], digits[4:10], digits[10:]]
        if len(digits) == 15
        else [digits[i : i + 4] for i in range(0, len(digits), 4)]
    )
    return rng.choice((" ", " ", "-", "")).join(groups)


def _card(rng: random.Random) -> tuple[str, str]:
    digits, brand = _card_number(rng)
    return _format_card(rng, digits), brand


def _bban(rng: random.Random, country: str) -> str:
    """A random BBAN in the country's layout: ``n`` digits, ``a`` letters, ``c`` alphanumerics."""
    pools = {"n": string.digits, "a": string.ascii_uppercase, "c": _ALNUM}
    return "".join(
        rng.choice(pools[cls]) for count, cls in _BBAN_LAYOUTS[country] for _ in range(count)
    )


def _format_iban(rng: random.Random, compact: str) -> str:
    if rng.random() < 0.3:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _iban(rng: random.Random, *, valid: bool = True) -> tuple[str, str]:
    country = rng.choice(tuple(_BBAN_LAYOUTS))
    bban = _bban(rng, country)
    check = iban_check_digits(country, bban)
    if not valid:
        check = f"{(int(check) + rng.randint(1, 90)) % 97 + 2:02d}"
        if check == iban_check_digits(country, bban):
            check = f"{(int(check) + 1) % 97 + 2:02d}"
    return _format_iban(rng, country + check + bban), country


def _national_id(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(("ssn", "ssn", "dni", "dni", "nie"))
    if kind == "ssn":
        area = rng.choice([a for a in range(1, 900) if a != 666])
        serial = rng.randint(1, 9999)
        return f"{area:03d}-{rng.randint(1, 99):02d}-{serial:04d}", kind
    if kind == "dni":
        number = rng.randint(1_000_000, 99_999_999)
        return f"{number:08d}{rng.choice(('', '-'))}{dni_letter(number)}", kind
    prefix = rng.randrange(3)
    number = rng.randint(0, 9_999_999)
    letter = dni_letter(prefix * 10_000_000 + number)
    return f"{'XYZ'[prefix]}{number:07d}{letter}", kind


def _pem(rng: random.Random, label: str) -> str:
    lines = ["".join(rng.choice(_B64) for _ in range(64)) for _ in range(rng.randint(6, 20))]
    tail = "".join(rng.choice(_B64) for _ in range(rng.randint(8, 60)))
    body = "\n".join([*lines, tail + "=" * rng.randint(0, 2)])
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


def _secret(rng: random.Random) -> tuple[str, str, str]:
    """(text to insert, the sensitive value inside it, kind)."""
    kind = rng.choice(("aws", "github", "github", "api_key", "api_key", "pem"))
    if kind == "aws":
        value = rng.choice(("AKIA", "ASIA")) + "".join(rng.choice(_B32) for _ in range(16))
        return f"aws_access_key_id = {value}", value, "aws_access_key_id"
    if kind == "github":
        if rng.random() < 0.7:
            value = "ghp_" + "".join(rng.choice(_B62) for _ in range(36))
        else:
            value = f"github_pat_{''.join(rng.choice(_B62) for _ in range(22))}_" + "".join(
                rng.choice(_B62) for _ in range(59)
            )
        return f"GITHUB_TOKEN={value}", value, "github_token"
    if kind == "api_key":
        value = "".join(rng.choice(_B62) for _ in range(rng.randint(32, 40)))
        name = rng.choice(("api_key", "API_KEY", "apiKey", "client_secret", "auth_token"))
        name = rng.choice((name, "aws_secret_access_key", "stripe_secret_key"))
        if rng.random() < 0.2:
            return f'{{"{name}": "{value}", "region": "eu-west-1"}}', value, "api_key"
        quote = rng.choice(("", '"', "'"))
        return f"{name}{rng.choice(('=', ' = ', ': '))}{quote}{value}{quote}", value, "api_key"
    label = rng.choice(("RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY"))
    block = _pem(rng, label)
    return block, block, "private_key"


def _item(rng: random.Random, kind: str) -> tuple[str, str, str]:
    """(text to insert, value, kind) for one sensitive item of type ``kind``."""
    if kind == "secret":
        return _secret(rng)
    makers = {
        "email": _email,
        "phone": _phone,
        "card": _card,
        "iban": _iban,
        "national_id": _national_id,
    }
    value, sub = makers[kind](rng)
    return value, value, sub


def _decoy(rng: random.Random) -> tuple[str, str, str, str]:
    """(sentence, type, kind, value) of a look-alike that must not be reported."""
    kind = rng.choice(("card", "card", "iban", "ssn", "dni", "api_key", "pem", "aws", "email"))
    if kind == "card":
        digits, _ = _card_number(rng)
        digits = digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10)
        value = _format_card(rng, digits)
        return f"Tracking number {value} was assigned to the parcel.", "card", "luhn_invalid", value
    if kind == "iban":
        value, _ = _iban(rng, valid=False)
        return f"The old account {value} was closed last year.", "iban", "bad_checksum", value
    if kind == "ssn":
        area = rng.choice(("000", "666", str(rng.randint(900, 999))))
        value = f"{area}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        return f"Form field example: {value} (sample only).", "national_id", "ssn_invalid", value
    if kind == "dni":
        number = rng.randint(10_000_000, 99_999_999)
        wrong = rng.choice([c for c in "TRWAGMYFPDXBNJZSQVHLCKE" if c != dni_letter(number)])
        value = f"{number}{wrong}"
        return f"Part number {value} is out of stock.", "national_id", "dni_bad_letter", value
    if kind == "api_key":
        value = rng.choice(("YOUR_API_KEY_HERE", "xxxxxxxxxxxxxxxxxxxxxxxx", "0000000000000000"))
        return f"Set api_key={value} in the sample file.", "secret", "placeholder", value
    if kind == "pem":
        value = _pem(rng, rng.choice(("PUBLIC KEY", "CERTIFICATE")))
        return f"The server certificate follows.\n{value}", "secret", "public_pem", value
    if kind == "aws":
        value = "AKIA****************"
        return f"The key {value} was redacted.", "secret", "redacted", value
    return "Local mail goes to admin@localhost only.", "email", "no_tld", "admin@localhost"


# --- text -------------------------------------------------------------------------------


def _plural(noun: str) -> str:
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _third_person(verb: str) -> str:
    """``review`` -> ``reviews``, ``verify`` -> ``verifies``: the plural's spelling rules."""
    return _plural(verb)


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice(
        (f"{y}-{m:02d}-{d:02d}", f"{d} {_MONTHS[m - 1]} {y}", f"{_MONTHS[m - 1]} {d}, {y}")
    )


def _person(rng: random.Random) -> str:
    return f"{rng.choice(V.FIRST_NAMES)} {rng.choice(V.LAST_NAMES)}"


_SLOTS: dict[str, Callable[[random.Random], str]] = {
    "G": lambda rng: rng.choice(V.GENERIC["adjectives"]),
    "PERSON": _person,
    "ORG": lambda rng: rng.choice(V.ORGS),
    "NUM": lambda rng: str(rng.randint(2, 480)),
    "PCT": lambda rng: f"{rng.uniform(0.5, 45):.1f}%",
    "DATE": _date,
    "ADV": lambda rng: rng.choice(V.GENERIC["adverbs"]),
    "PLACE": lambda rng: rng.choice(V.PLACES),
    "MONEY": lambda rng: rng.choice(("EUR ", "$", "GBP ")) + f"{rng.randint(2, 9_800) * 250:,}",
    "BP": lambda rng: f"{rng.randint(105, 160)}/{rng.randint(65, 100)} mmHg",
    "TIME": lambda rng: f"{rng.randint(5, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}",
    "VERSION": lambda rng: f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}",
    "DIGIT": lambda rng: str(rng.randint(1, 5)),
}


def _fill(rng: random.Random, template: str, topic: V.Topic, period: tuple[str, ...]) -> str:
    """One sentence: ``template`` with every slot filled from the topic's vocabulary."""
    nouns = rng.sample(topic.nouns, 2)

    def slot(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in ("N", "N2"):
            return nouns[0] if name == "N" else nouns[1]
        if name == "Ns":
            return _plural(nouns[0])
        if name in ("V", "Vs"):
            verb = rng.choice(topic.verbs)
            return verb if name == "V" else _third_person(verb)
        if name == "A":
            return rng.choice(topic.adjectives)
        if name == "TEAM":
            return rng.choice(topic.teams)
        if name == "PERIOD":
            return rng.choice(period)
        return _SLOTS[name.rstrip("0123456789")](rng)

    sentence = _A_AN.sub(r"\1n ", _SLOT.sub(slot, template))
    return sentence[0].upper() + sentence[1:]


class _Writer:
    """Builds a document from pieces and records the offsets of planted values."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.items: list[dict[str, Any]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def add_item(self, before: str, value: str, after: str, kind: str, sub: str) -> None:
        start = self.size + len(before)
        self.add(before + value + after)
        self.items.append(
            {"type": kind, "kind": sub, "value": value, "start": start, "end": start + len(value)}
        )

    def text(self) -> str:
        return "".join(self.parts)


def _item_types(rng: random.Random, topic: str, large: bool) -> list[str]:
    weights = dict(_BASE_WEIGHTS)
    for kind in _TOPIC_BOOST[topic]:
        weights[kind] *= 2.0
    n = rng.choices((1, 2, 3, 4, 5), weights=(40, 30, 18, 8, 4))[0]
    if large:
        n = rng.randint(3, 12)
    return rng.choices(list(weights), weights=list(weights.values()), k=n)


def _target_bytes(rng: random.Random, large: bool) -> int:
    if large:
        return rng.randint(_LARGE_MIN, _LARGE_MAX)
    size = rng.lognormvariate(math.log(_MEDIAN_BYTES), _SIGMA)
    return int(min(_MAX_BYTES, max(_MIN_BYTES, size)))


def generate_document(
    seed: int, index: int, *, large_share: float = 0.0, sensitive_share: float = SENSITIVE_SHARE
) -> tuple[str, dict[str, Any]]:
    """Document ``index`` of the corpus with ``seed``: its text and its label (no file name)."""
    rng = random.Random(f"docproc-corpus:{seed}:{index}")
    large = rng.random() < large_share
    sensitive = rng.random() < sensitive_share
    with_decoys = rng.random() < DECOY_SHARE
    lang_draw = rng.random()
    language = "en" if lang_draw < 0.9 else ("es", "fr", "de")[min(2, int((lang_draw - 0.9) * 30))]
    topic_name = rng.choice(TOPIC_NAMES)
    target = _target_bytes(rng, large)
    kinds = _item_types(rng, topic_name, large) if sensitive else []
    decoys = [_decoy(rng) for _ in range(rng.randint(1, 3))] if with_decoys else []
    writer = _Writer()
    _write_body(rng, writer, language, topic_name, target, kinds, decoys)
    text = writer.text()
    counts = Counter(item["type"] for item in writer.items)
    graded = grade(counts, topic_name)
    label = {
        "bytes": len(text.encode()),
        "topic": topic_name,
        "language": language,
        "large": large,
        "risk": graded["level"],
        "score": graded["score"],
        "items": writer.items,
        "decoys": [{"type": t, "kind": k, "value": v} for _, t, k, v in decoys],
    }
    return text, label


def _write_body(
    rng: random.Random,
    w: _Writer,
    language: str,
    topic_name: str,
    target: int,
    kinds: list[str],
    decoys: list[tuple[str, str, str, str]],
) -> None:
    topic = V.TOPICS[topic_name]
    foreign = V.FOREIGN.get(language)
    if foreign is None:
        title, period = rng.choice(topic.titles), V.GENERIC["periods"]
        templates = [*V.GENERIC["templates"], *topic.templates, *topic.templates]
        carriers = V.CARRIERS
        grammar = topic
    else:
        title, period = rng.choice(foreign.titles), foreign.periods
        templates = list(foreign.templates)
        carriers = foreign.carriers
        grammar = V.Topic((), foreign.nouns[topic_name], ("",), ("",), ("",), ())
    w.add(f"{title}\nDate: {_date(rng)}\nFrom: {_person(rng)} ({rng.choice(V.ORGS)})\n")
    w.add(f"Reference: DOC-{rng.randint(2019, 2026)}-{rng.randint(1, 9999):04d}\n")
    # Plant items and decoys at random sentence slots of the body.
    reserve = 60 * len(kinds) + sum(len(d[0]) for d in decoys)  # about one carrier sentence each
    budget = max(400, target - reserve)
    pending: list[tuple[str, Any]] = [("item", k) for k in kinds] + [("decoy", d) for d in decoys]
    rng.shuffle(pending)
    while w.size < budget or pending:
        w.add("\n")
        for j in range(rng.randint(3, 7)):
            if j:
                w.add(" ")
            if pending and (w.size >= budget or rng.random() < 0.12):
                _plant(rng, w, pending.pop(), carriers)
            else:
                w.add(_fill(rng, rng.choice(templates), grammar, period))
        w.add("\n")
    if foreign is None:
        w.add(f"\n{rng.choice(V.GENERIC['closings'])},\n{_person(rng)}\n")


def _plant(
    rng: random.Random, w: _Writer, entry: tuple[str, Any], carriers: dict[str, tuple[str, ...]]
) -> None:
    what, payload = entry
    if what == "decoy":
        w.add(payload[0])
        return
    kind: str = payload
    insert, value, sub = _item(rng, kind)
    if sub == "private_key":
        intro = rng.choice(("The retired deploy key is kept below.", "Key material:"))
        w.add_item(intro + "\n", value, "\n", kind, sub)
        return
    carrier = rng.choice(carriers[kind])
    before, after = carrier.split("{v}")
    offset = insert.index(value)
    w.add_item(before + insert[:offset], value, insert[offset + len(value) :] + after, kind, sub)


# --- the corpus -------------------------------------------------------------------------


def _clear(out: Path) -> None:
    for old in out.glob("doc-*.txt"):
        old.unlink()
    (out / "labels.jsonl").unlink(missing_ok=True)


def generate(
    out: Path,
    count: int = 2745,
    seed: int = 7,
    *,
    large_share: float = 0.0,
    sensitive_share: float = SENSITIVE_SHARE,
) -> CorpusStats:
    """Write ``count`` documents and ``labels.jsonl`` into ``out`` (replacing an older corpus)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    for name, share in (("large_share", large_share), ("sensitive_share", sensitive_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {share}")
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    labels: list[dict[str, Any]] = []
    with (out / "labels.jsonl").open("w", encoding="utf-8", newline="\n") as sink:
        for i in range(count):
            text, label = generate_document(
                seed, i, large_share=large_share, sensitive_share=sensitive_share
            )
            name = f"doc-{i:05d}.txt"
            (out / name).write_bytes(text.encode("utf-8"))
            label = {"file": name, **label}
            sink.write(json.dumps(label, ensure_ascii=False, sort_keys=True) + "\n")
            labels.append(label)
    return _stats(labels, seed)


def _percentile(sorted_values: list[int], q: float) -> float:
    """Linear-interpolated percentile (the same definition as numpy's default)."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _stats(labels: list[dict[str, Any]], seed: int) -> CorpusStats:
    sizes = sorted(label["bytes"] for label in labels)
    items = Counter(item["type"] for label in labels for item in label["items"])
    return CorpusStats(
        count=len(labels),
        seed=seed,
        total_bytes=sum(sizes),
        mean_bytes=round(statistics.fmean(sizes), 1),
        stdev_bytes=round(statistics.pstdev(sizes), 1),
        min_bytes=sizes[0],
        max_bytes=sizes[-1],
        p50_bytes=_percentile(sizes, 0.5),
        p95_bytes=round(_percentile(sizes, 0.95), 1),
        sensitive_docs=sum(1 for label in labels if label["items"]),
        decoy_docs=sum(1 for label in labels if label["decoys"]),
        large_docs=sum(1 for label in labels if label["large"]),
        items={kind: items.get(kind, 0) for kind in TYPES},
        decoys=sum(len(label["decoys"]) for label in labels),
        topics=dict(sorted(Counter(label["topic"] for label in labels).items())),
        languages=dict(sorted(Counter(label["language"] for label in labels).items())),
        risk={level: sum(1 for lb in labels if lb["risk"] == level) for level in LEVELS},
    )
