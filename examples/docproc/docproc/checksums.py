"""Check digits and validity rules for the structured identifiers the risk stage finds.

Each identifier type has a checksum or a structural rule that separates a real
value from a look-alike digit run; the detector reports only values that pass,
and the corpus generator uses the same arithmetic to plant valid values and
deliberately invalid decoys.

- Payment cards: the Luhn (mod-10) check digit, ISO/IEC 7812-1 annex B.
- IBAN: ISO 13616 mod-97-10 (ISO 7064) check digits and the per-country length.
- Spanish DNI / NIE: the control letter ``TRWAGMYFPDXBNJZSQVHLCKE[n % 23]``
  (Real Decreto 1553/2005; NIE prefix X/Y/Z counts as 0/1/2).
- US SSN: area 001-899 except 666, group 01-99, serial 0001-9999 (SSA rules
  since the 2011 randomisation).
- Secrets: Shannon entropy in bits per character of the candidate value.
"""

from __future__ import annotations

import math
from collections import Counter

__all__ = [
    "IBAN_LENGTHS",
    "dni_letter",
    "iban_check_digits",
    "iban_valid",
    "luhn_check_digit",
    "luhn_valid",
    "nie_valid",
    "shannon_entropy",
    "ssn_valid",
]

# ISO 13616 registry lengths (country code -> total IBAN length), a broad subset.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "CH": 21,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IS": 26, "IT": 27, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "ME": 22, "MK": 19, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26,
}  # fmt: skip

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIE_PREFIX = {"X": "0", "Y": "1", "Z": "2"}


def luhn_valid(digits: str) -> bool:
    """True when the digit string's last digit is its Luhn check digit."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    return luhn_check_digit(digits[:-1]) == int(digits[-1])


def luhn_check_digit(payload: str) -> int:
    """The Luhn digit that makes ``payload + digit`` valid."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10


def _iban_mod97(rearranged: str) -> int:
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits of the IBAN ``country + ?? + bban``."""
    return f"{98 - _iban_mod97(bban + country + '00'):02d}"


def iban_valid(iban: str) -> bool:
    """True for a compact IBAN (no spaces) of the right length with valid mod-97."""
    if len(iban) < 5 or not iban.isalnum() or not iban.isascii():
        return False
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    return _iban_mod97(iban[4:] + iban[:4]) == 1


def dni_letter(number: int) -> str:
    """The control letter of a DNI number (or an NIE with its prefix mapped)."""
    return _DNI_LETTERS[number % 23]


def nie_valid(nie: str) -> bool:
    """True for a compact NIE ``X1234567L`` / DNI ``12345678Z`` with its right letter."""
    head, letter = nie[:-1], nie[-1:]
    if head[:1] in _NIE_PREFIX:
        head = _NIE_PREFIX[head[:1]] + head[1:]
    if not head.isdigit() or len(head) != 8:
        return False
    return dni_letter(int(head)) == letter


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN structural rules: no 000/666/9xx area, no 00 group, no 0000 serial."""
    if not (len(area) == 3 and len(group) == 2 and len(serial) == 4):
        return False
    if not (area + group + serial).isdigit():
        return False
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def shannon_entropy(value: str) -> float:
    """Shannon entropy of the characters of ``value`` in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())
