"""The semantic stage: keywords (YAKE + TF-IDF), language, topic and reading statistics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from docproc.corpus import CorpusStats
from docproc.handlers import merge_semantic
from docproc.risk import detect
from docproc.semantic import IdfTable, analyse, build_idf, default_idf, sensitive_parts

FINANCE = """Quarterly Liquidity Review

The treasury team reviewed the liquidity position and the credit line before the board
meeting. Liquidity improved after the bond was refinanced, and the liquidity buffer now
covers ninety days of operating expenses. The auditors asked for the cash flow forecast
and the reconciliation of every invoice above the threshold. Dividend payments remain
suspended until the liquidity ratio recovers. The budget for the next quarter assumes a
stable interest rate and a modest increase in revenue.
"""

SPANISH = (
    "El equipo de finanzas revisó el presupuesto y las facturas del último trimestre. "
    "Según la directora, la liquidez de la empresa mejoró durante el año y no hay "
    "problemas con los impuestos. Por favor, confirme que los datos están actualizados."
)
FRENCH = (
    "L'équipe a examiné les résultats des expériences sur les échantillons pendant le "
    "premier trimestre. Selon le responsable du laboratoire, la recherche avance et les "
    "hypothèses sont confirmées. Merci de confirmer que les informations sont à jour."
)
GERMAN = (
    "Die Abteilung hat die Flüge und die Hotels für die Reise nach Berlin gebucht. Laut "
    "dem Reisebüro ist das Gepäck im Preis enthalten, und die Buchung wurde bestätigt. "
    "Bitte prüfen Sie, ob die Angaben zu den Reisepässen aktuell sind."
)


def test_result_shape_is_json_able() -> None:
    result = analyse(FINANCE)
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {"keywords", "language", "topic", "topic_scores", "stats"}
    assert set(result["stats"]) == {
        "chars",
        "words",
        "sentences",
        "avg_sentence_words",
        "flesch_reading_ease",
    }
    assert len(result["topic_scores"]) == 8
    assert sum(result["topic_scores"].values()) == pytest.approx(1.0, abs=0.01)


def test_keywords_are_ranked_and_relevant() -> None:
    keywords = analyse(FINANCE, top_k=8)["keywords"]
    assert len(keywords) == 8
    scores = [k["score"] for k in keywords]
    assert scores[0] == 1.0
    assert scores == sorted(scores, reverse=True)
    terms = " | ".join(k["term"].lower() for k in keywords)
    assert "liquidity" in terms
    stop = {"the", "and", "of", "before", "after", "for"}
    for keyword in keywords:
        words = keyword["term"].lower().split()
        assert words[0] not in stop
        assert words[-1] not in stop


def test_near_duplicate_keywords_are_dropped() -> None:
    terms = [k["term"].lower() for k in analyse(FINANCE, top_k=15)["keywords"]]
    for i, a in enumerate(terms):
        for b in terms[i + 1 :]:
            assert not set(a.split()) <= set(b.split())
            assert not set(b.split()) <= set(a.split())


def test_idf_demotes_words_common_in_the_corpus() -> None:
    body = FINANCE.split("\n", 2)[2]  # without the title

    def with_liquidity(table: IdfTable) -> int:
        keywords = analyse(body, top_k=12, idf=table)["keywords"]
        return sum("liquidity" in k["term"].lower().split() for k in keywords)

    unseen = with_liquidity(IdfTable(1000, {}))
    common = with_liquidity(IdfTable(1000, {"liquidity": 990}))
    assert unseen >= 3
    assert common < unseen


def test_topic_and_language() -> None:
    english = analyse(FINANCE)
    assert (english["language"], english["topic"]) == ("en", "finance")
    assert analyse(SPANISH)["language"] == "es"
    assert analyse(SPANISH)["topic"] == "finance"
    assert analyse(FRENCH)["language"] == "fr"
    assert analyse(FRENCH)["topic"] == "science"
    assert analyse(GERMAN)["language"] == "de"
    assert analyse(GERMAN)["topic"] == "travel"


def test_reading_statistics() -> None:
    stats = analyse("The cat sat on the mat. The dog ran home.")["stats"]
    assert stats["sentences"] == 2
    assert stats["words"] == 10
    assert stats["avg_sentence_words"] == 5.0
    # every word has one syllable: 206.835 - 1.015 * 5 - 84.6 * 1
    assert stats["flesch_reading_ease"] == pytest.approx(117.16, abs=0.01)


def test_empty_and_odd_inputs() -> None:
    empty = analyse("")
    assert empty["keywords"] == []
    assert (empty["language"], empty["topic"]) == ("und", "general")
    assert empty["stats"]["words"] == 0
    numbers = analyse("12 34 56. 7.5%")
    assert numbers["keywords"] == []
    assert analyse(FINANCE, top_k=0)["keywords"] == []
    with pytest.raises(ValueError, match="top_k"):
        analyse(FINANCE, top_k=-1)


def test_build_idf_and_round_trip() -> None:
    table = build_idf(["the budget", "the invoice", "the ledger budget"], min_df=1)
    assert table.documents == 3
    assert table.df["the"] == 3
    assert table.df["budget"] == 2
    assert table.idf("the") < table.idf("budget") < table.idf("invoice") < table.idf("unseen")
    assert table.idf("unseen") == table.max_idf
    assert IdfTable.from_json(table.to_json()) == table
    assert "ledger" not in build_idf(["the ledger", "the budget"]).df  # min_df=2


def test_bad_idf_tables_are_named() -> None:
    with pytest.raises(ValueError, match=r"x\.json: not an IDF table"):
        IdfTable.from_json('{"df": {}}', where="x.json")
    with pytest.raises(ValueError, match="'documents' must be at least 1"):
        IdfTable.from_json('{"documents": 0, "df": {}}')
    with pytest.raises(ValueError, match="no documents"):
        build_idf([])


def test_default_idf_is_the_packaged_corpus_table() -> None:
    table = default_idf()
    assert table.documents == 2745
    assert table.idf("the") < table.idf("liquidity")


# Keywords are metadata anyone who reaches the router reads without the reader token.
SENSITIVE = """Patient Discharge Summary

The patient was discharged after the cardiology review. Questions about the discharge
go to chiara.navarro@example.com or, after hours, to chiaranavarro@woodgrove-bank.com.
Chiaranavarro@woodgrove-bank.com confirmed the follow-up appointment. Call +34 612 345 678
for the pharmacy. Refunds go to IBAN DE89 3704 0044 0532 0130 00 or card 4111 1111 1111 1111.
The deployment config still holds api_key = "Zx8Qm2Lp9Rt4Vw7Yk3Hs" and must be rotated.
Write to chiara.navarro@example.com again before the next appointment; chiara.navarro@example.com
answers within a day.
"""
_PARTS = re.compile(r"[^\W\d_]{3,}")  # runs of three letters or more, as semantic.py blocks


def _parts(text: str) -> set[str]:
    """The parts of every item the risk stage flags in ``text`` (found here, independently)."""
    return {part.lower() for f in detect(text) for part in _PARTS.findall(f.value)}


def _keyword_words(keywords: list[dict[str, object]]) -> set[str]:
    return {w.lower() for k in keywords for w in _PARTS.findall(str(k["term"]))}


def test_keywords_contain_no_part_of_what_the_risk_stage_flags() -> None:
    found = {f.type for f in detect(SENSITIVE)}
    assert found == {"email", "phone", "iban", "card", "secret"}  # the risk stage sees them all
    result = analyse(SENSITIVE, top_k=20)
    keywords = result["keywords"]
    assert len(keywords) == 20  # there is enough else to say
    words = _keyword_words(keywords)
    for part in ("chiara", "navarro", "chiaranavarro", "example", "woodgrove", "bank", "com"):
        assert part not in words, (part, keywords)
    flat = "".join(k["term"].lower() for k in keywords).replace(" ", "")
    for digits in ("612345678", "3704", "4111", "zx8qm2lp9rt4vw7yk3hs"):
        assert digits not in flat, (digits, keywords)
    assert words.isdisjoint(_parts(SENSITIVE)), keywords
    assert "Patient Discharge Summary" in [k["term"] for k in keywords]
    # characters and words count the whole text, the sensitive items included
    unblanked = analyse(SENSITIVE, findings=[])
    assert "chiaranavarro" in _keyword_words(unblanked["keywords"])  # what used to leak
    assert result["stats"]["chars"] == unblanked["stats"]["chars"] == len(SENSITIVE)
    assert result["stats"]["words"] == unblanked["stats"]["words"]


def test_a_sensitive_word_is_blocked_wherever_it_occurs() -> None:
    text = (
        "Woodgrove Bank approved the loan. The Woodgrove Bank team met the auditors. "
        "Send the signed loan contract to mateo.haddad@woodgrove-bank.com today."
    )
    keywords = analyse(text)["keywords"]
    assert keywords
    assert not {"woodgrove", "bank", "mateo", "haddad"} & _keyword_words(keywords), keywords
    assert sensitive_parts(text) == {"mateo", "haddad", "woodgrove", "bank", "com"}
    # without the email the company name is a keyword again
    plain = analyse(text.split(" Send")[0])["keywords"]
    assert "woodgrove" in _keyword_words(plain)


def test_the_corpus_keywords_skip_every_flagged_item(
    small_corpus: tuple[Path, CorpusStats],
) -> None:
    folder, _ = small_corpus
    checked = 0
    for path in sorted(folder.glob("doc-*.txt")):
        text = path.read_text(encoding="utf-8")
        parts = _parts(text)
        if not parts:
            continue
        keywords = analyse(text)["keywords"]
        assert _keyword_words(keywords).isdisjoint(parts), (path.name, keywords)
        checked += 1
    assert checked >= 50  # secrets, emails, IBANs: plenty of flagged items in 200 documents


def test_merged_keywords_skip_words_flagged_in_another_part() -> None:
    first = analyse("Woodgrove Bank approved the loan. The Woodgrove Bank team met the auditors.")
    second = analyse("Send the contract to mateo.haddad@woodgrove-bank.com today.")
    assert "woodgrove" in _keyword_words(first["keywords"])  # part one cannot know
    merged = merge_semantic(
        [first, second],
        blocked=sensitive_parts("Send the contract to mateo.haddad@woodgrove-bank.com today."),
    )
    assert merged["keywords"]
    assert "woodgrove" not in _keyword_words(merged["keywords"]), merged["keywords"]
