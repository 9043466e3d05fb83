"""The risk stage: validators, detection (with look-alikes), grading, and no value leaks."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from docproc.checksums import (
    dni_letter,
    iban_check_digits,
    iban_valid,
    luhn_check_digit,
    luhn_valid,
    nie_valid,
    shannon_entropy,
    ssn_valid,
)
from docproc.risk import Finding, assess, detect, grade

PEM_PRIVATE = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
PEM_PUBLIC = PEM_PRIVATE.replace("RSA PRIVATE KEY", "PUBLIC KEY")
AWS_KEY = "AKIAIOSFODNN7EXAMPL2"
GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
API_VALUE = "Zx81kQ0pLm27VbN4cR9sTq6wEy3uIo5A"

# One of each type, in the formats the detector documents.
SENSITIVE = {
    "email": ["jane.doe+hr@example.co.uk", "o'brien@mail.example.net"],
    "phone": [
        "(415) 555-0132",
        "415-555-0199",
        "+1 415 555 0100",
        "+44 20 7946 0958",
        "+34 612 34 56 78",
        "+49 (0)89 1234 5678",
        "01 42 68 53 00",
    ],
    "card": ["4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "2223003122003222"],
    "iban": [
        "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000",
        "FR1420041010050500013M02606",
    ],
    "national_id": ["078-05-1120", "12345678Z", "X1234567L"],
    "secret": [AWS_KEY, GITHUB_TOKEN, API_VALUE, PEM_PRIVATE],
}


def _document() -> str:
    lines = [f"Item {i}: {value} is on file." for i, value in enumerate(SENSITIVE["email"])]
    lines += [f"Call {value} today." for value in SENSITIVE["phone"]]
    lines += [f"Card {value} was charged." for value in SENSITIVE["card"]]
    lines += [f"Pay to {value} please." for value in SENSITIVE["iban"]]
    lines += [f"ID {value} checked." for value in SENSITIVE["national_id"]]
    lines += [f"aws_access_key_id = {AWS_KEY}", f"GITHUB_TOKEN={GITHUB_TOKEN}"]
    lines += [f'config: api_key = "{API_VALUE}"', "Deploy key:", PEM_PRIVATE]
    return "\n".join(lines) + "\n"


# --- validators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("5555555555554444", True),
        ("378282246310005", True),
        ("378282246310006", False),
        ("2223003122003222", True),
        ("79927398713", True),
        ("7992739871x", False),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


def test_luhn_check_digit_makes_a_valid_number() -> None:
    assert luhn_check_digit("7992739871") == 3
    payload = "411111111111111"
    assert luhn_valid(payload + str(luhn_check_digit(payload)))


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("GB82WEST12345698765432", True),
        ("DE89370400440532013000", True),
        ("ES9121000418450200051332", True),
        ("FR1420041010050500013M02606", True),
        ("NL91ABNA0417164300", True),
        ("GB82WEST12345698765433", False),  # checksum
        ("GB82WEST1234569876543", False),  # length
        ("XX82WEST12345698765432", False),  # country
        ("GB82 WEST 1234 5698 7654 32", False),  # compact form only
    ],
)
def test_iban(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


def test_iban_check_digits() -> None:
    assert iban_check_digits("GB", "WEST12345698765432") == "82"
    assert iban_check_digits("DE", "370400440532013000") == "89"


@pytest.mark.parametrize(
    ("value", "valid"),
    [("12345678Z", True), ("12345678A", False), ("X1234567L", True), ("Y1234567X", True)],
)
def test_dni_and_nie_letters(value: str, valid: bool) -> None:
    assert nie_valid(value) is valid
    assert dni_letter(12345678) == "Z"


@pytest.mark.parametrize(
    ("ssn", "valid"),
    [
        ("078-05-1120", True),
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("912-12-3456", False),
        ("123-00-4567", False),
        ("123-45-0000", False),
    ],
)
def test_ssn_rules(ssn: str, valid: bool) -> None:
    assert ssn_valid(*ssn.split("-")) is valid


def test_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert shannon_entropy(API_VALUE) > 4.0


# --- detection -----------------------------------------------------------------------------


def test_detects_every_type_and_format() -> None:
    text = _document()
    found: dict[str, list[str]] = {}
    for f in detect(text):
        assert text[f.start : f.end] == f.value
        found.setdefault(f.type, []).append(f.value)
    assert found == SENSITIVE


def test_findings_are_frozen_and_ordered() -> None:
    findings = detect(_document())
    assert [f.start for f in findings] == sorted(f.start for f in findings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        findings[0].value = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "decoy",
    [
        "Tracking number 4111 1111 1111 1112 was assigned.",  # Luhn-invalid
        "Order 4111111111111112 shipped.",
        "Old account GB82 WEST 1234 5698 7654 33 closed.",  # bad checksum
        "Old account DE89370400440532013001 closed.",
        "Sample SSN 000-12-3456, 666-45-6789 and 987-65-4321.",
        "Part 12345678A is out of stock.",
        "Set api_key=YOUR_API_KEY_HERE or token = xxxxxxxxxxxxxxxxxxxxxxxx in the sample.",
        "password: correcthorsebatterystaple",
        "The key AKIA**************** was redacted.",
        "Mail admin@localhost or ops at example dot com.",
        PEM_PUBLIC,
        "Released 2.14.3 on 2024-03-15 at 10:45; revenue EUR 1,250,000 (12.5%), 128/82 mmHg.",
        "ISBN 978-3-16-148410-0, invoice INV-2024-004512, ref DOC-2021-0042.",
        "Numbers 1234 5678 9012 3456 7890 are a long digit run, not a card or phone.",
    ],
)
def test_look_alikes_are_not_reported(decoy: str) -> None:
    assert detect(decoy) == []


def test_digits_of_an_iban_are_not_a_card() -> None:
    # "4111 1111 1111 1111" (a valid Visa) is a run of groups inside these IBANs
    bban = "4111" * 5
    check = iban_check_digits("ES", bban)
    grouped = " ".join(bban[i : i + 4] for i in range(0, 20, 4))
    valid = detect(f"Account ES{check} {grouped}.")
    assert [(f.type, f.value) for f in valid] == [("iban", f"ES{check} {grouped}")]
    wrong = "01" if check != "01" else "02"
    assert detect(f"Old account ES{wrong} {grouped} closed.") == []


def test_a_phone_inside_a_longer_number_is_not_reported() -> None:
    assert detect("Serial 415-555-0132-77 and 0033 01 42 68 53 00 99") == []


# --- grading -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "topic", "level"),
    [
        ({}, None, "low"),
        ({"email": 1}, None, "low"),
        ({"email": 2, "phone": 1}, None, "low"),
        ({"email": 2, "phone": 2}, None, "medium"),
        ({"email": 1, "phone": 1}, "health", "medium"),
        ({"email": 1, "phone": 1}, "travel", "low"),
        ({"national_id": 1}, None, "medium"),
        ({"iban": 1}, "finance", "medium"),
        ({"national_id": 2}, None, "medium"),
        ({"national_id": 3}, None, "high"),
        ({"national_id": 1, "iban": 1, "email": 1}, "hr", "high"),
        ({"card": 1}, None, "high"),
        ({"secret": 1}, "marketing", "high"),
    ],
)
def test_grade_levels(counts: dict[str, int], topic: str | None, level: str) -> None:
    assert grade(counts, topic)["level"] == level


def test_grade_score_and_criteria() -> None:
    graded = grade({"national_id": 1, "email": 2}, "health")
    criteria = graded["criteria"]
    assert criteria["national_id"] == {"count": 1, "score": 0.5}
    assert criteria["email"] == {"count": 2, "score": pytest.approx(0.19)}
    assert criteria["topic"]["score"] == 0.15
    assert graded["score"] == pytest.approx(1 - 0.5 * 0.81 * 0.85, abs=1e-4)
    assert grade({})["score"] == 0.0


def test_semantic_topic_raises_the_assessment() -> None:
    text = "Write to ana.ruiz@example.com or call (415) 555-0132."
    plain, health = assess(text), assess(text, {"topic": "health"})
    assert (plain["level"], health["level"]) == ("low", "medium")
    assert health["score"] > plain["score"]


def test_assess_never_contains_the_values() -> None:
    text = _document()
    result = assess(text, {"topic": "finance"})
    dumped = json.dumps(result)
    assert result["level"] == "high"
    assert len(result["findings"]) == sum(len(v) for v in SENSITIVE.values())
    assert set(result["findings"][0]) == {"type", "kind", "start", "end"}
    for values in SENSITIVE.values():
        for value in values:
            assert value not in dumped
            digits = re.sub(r"[^0-9A-Za-z]", "", value)
            assert digits not in re.sub(r"[^0-9A-Za-z]", "", dumped)


def test_finding_equality() -> None:
    assert Finding("email", 0, 3, "a@b") == Finding("email", 0, 3, "a@b")


def test_many_findings_in_one_document() -> None:
    text = "\n".join(f"user{i}@example.com, card 4111 1111 1111 1111." for i in range(2000))
    findings = detect(text)
    assert [f.type for f in findings[:2]] == ["email", "card"]
    assert len(findings) == 4000
    assert len({(f.start, f.end) for f in findings}) == 4000
