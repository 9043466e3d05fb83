"""The semantic stage: keywords, language, topic and reading statistics of a text.

Keywords -- YAKE features re-weighted by TF-IDF
-----------------------------------------------
Candidates and single-term scores follow YAKE (Campos et al., "YAKE! Keyword
extraction from single documents using multiple local features", Information
Sciences 509, 2020). The text is split into sentences and, at punctuation and
numbers, into chunks. For every term *t* that is not a stopword of the detected
language (and has three letters or more):

- ``casing  = max(TF_upper, TF_acronym) / (1 + ln TF)`` -- capitalised mid-sentence;
- ``position = ln(ln(3 + median sentence index))`` -- early terms matter more;
- ``freq = TF / (mean TF + stdev TF)`` over the document's content terms;
- ``rel = 1 + (DL + DR) * TF / max TF`` with ``DL``/``DR`` the number of distinct
  left/right neighbours over all left/right co-occurrences (window 1) -- a term
  that sits next to many different words behaves like a stopword;
- ``sent = (sentences containing t) / (sentences)``;
- ``S(t) = rel * position / (casing + freq / rel + sent / rel)``, lower is better.

Candidate keywords are the 1- to 3-grams of a chunk that neither start nor end
with a stopword, scored ``S(kw) = prod S(t) / (TF(kw) * (1 + sum S(t)))`` over
their content terms (a stopword inside, as in "return on equity", counts as 1
-- a simplification of YAKE's bigram-probability term).

YAKE uses no corpus, so words common to the whole collection ("team", "review")
can rank high. We divide each candidate's YAKE score by the mean normalised
inverse document frequency of its content words, ``idf(w) = ln((N + 1) / (df(w)
+ 1)) + 1`` (the smoothed IDF of scikit-learn), from a table fitted on a corpus
(:func:`build_idf`; the default table ships in ``docproc/data/idf.json``, fitted
on ``eblocks docproc corpus --count 2745 --seed 7``). Words the table never saw
get the highest IDF. Near-duplicates are dropped: a candidate whose content
words include, or are included in, a better keyword's (YAKE drops them by edit
distance). Reported ``score`` is relative: best keyword 1.0, others
``best / own`` of the combined score.

Keywords never carry sensitive content. Keywords are stored as metadata, which
anyone who can reach the router reads without the reader token, so the text
spans the risk stage flags (:func:`docproc.risk.detect`: emails, phone numbers,
cards, IBANs, national IDs, secrets) are blanked out before chunking, and no
keyword may contain a word that has a run of three letters or more of such a
span, wherever else in the text it occurs: ``chiara.navarro@woodgrove-bank.com``
rules out "chiara", "navarro", "woodgrove", "bank" and "com" (and "Woodgrove
Bank"). Language, topic and word statistics see the same blanked text; the
character and word counts are those of the original.

Language, topic, statistics
---------------------------
- Language: share of tokens found in each language's stopword list (en, es, fr,
  de); the best share wins, ``"und"`` when fewer than three stopwords matched --
  the "stopword profile" method (Grefenstette 1995, "Comparing two language
  identification schemes").
- Topic: light-stemmed tokens counted against per-topic vocabularies (finance,
  health, legal, hr, engineering, marketing, travel, science; English plus
  common Spanish, French and German terms); ``topic_scores`` are the shares of
  those hits, ``topic`` the best one or ``"general"`` below three hits.
- Statistics: characters, words, sentences, words per sentence and the Flesch
  reading ease ``206.835 - 1.015 words/sentences - 84.6 syllables/words``
  (Flesch 1948; syllables by vowel groups; the English formula for every language).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final, NamedTuple

from docproc import risk

__all__ = [
    "STOPWORDS",
    "IdfTable",
    "analyse",
    "build_idf",
    "default_idf",
    "load_idf",
    "sensitive_parts",
    "sensitive_words",
]

# --- tables (built once at import) -------------------------------------------------------

_STOPWORDS_TEXT: Final = {
    "en": """a about above after again against all also am an and any are as at be because
    been before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers him his how i if in into is it
    its itself just may me might more most must my no nor not now of off on once only or other
    our ours out over own same shall she should so some such than that the their theirs them
    then there these they this those through to too under until up upon very was we were what
    when where which while who whom why will with within without would you your yours""",
    "es": """a al algo algunos ante antes como con contra cual cuando de del desde donde dos
    durante e el ella ellas ellos en entre era es esa ese eso esta este esto estos fue fueron
    ha hay la las le les lo los mas me mi muy nada ni no nos o otra otro para pero poco por
    porque que quien se sea ser si sin sobre son su sus también tanto te tiene todo todos tu
    un una unas uno unos y ya está están según será próximo""",
    "fr": """à au aux avec ce ces cette dans de des du elle en est et été être il ils je la le
    les leur lui ma mais me même mes moi mon ne nos notre nous on ou où par pas pour qu que qui
    sa se ses son sur ta te tes ton tu un une vos votre vous y a ont sont aussi car donc entre
    leurs lors merci pendant plus sans selon sous très reste""",
    "de": """aber alle als am an auch auf aus bei bin bis bitte da damit das dass dem den der
    des die dies diese dieser doch dort du durch ein eine einem einen einer es für gegen hat
    hatte ich ihr im in ist ja kann mit muss nach nicht noch nur ob oder sein sich sie sind so
    über um und uns vom von vor wann war was weil wenn werden wie wir wird wurde wurden zu zum
    zur gibt laut nächste statt""",
}
STOPWORDS: Final = {lang: frozenset(words.split()) for lang, words in _STOPWORDS_TEXT.items()}

_TOPIC_TEXT: Final = {
    "finance": """budget invoice ledger liquidity dividend revenue expense audit forecast
    portfolio equity bond interest credit cash balance accrual depreciation margin
    reconciliation payment treasury tax capital hedge valuation covenant receivable payable
    earnings fiscal profit loss asset liability loan bank refinance amortise presupuesto
    factura tesorería auditoría impuesto liquidez trésorerie impôt liquidité rechnung
    liquidität steuer bilanz prüfung""",
    "health": """patient diagnosis treatment dosage prescription symptom clinic ward physician
    nurse therapy vaccine infection allergy blood medical referral discharge biopsy radiology
    outpatient care medication surgery admission triage cholesterol antibiotic chronic clinical
    hospital cardiac paediatric diagnose prescribe paciente diagnóstico tratamiento medicamento
    consulta vacuna diagnostic traitement médicament vaccin patienten diagnose behandlung
    medikament impfung sprechstunde""",
    "legal": """contract clause liability indemnity plaintiff defendant court counsel settlement
    jurisdiction statute arbitration breach warranty litigation compliance regulation agreement
    amendment trademark patent license confidentiality termination law subpoena injunction
    hearing testimony diligence contractual statutory enforceable contrato cláusula litigio
    tribunal cumplimiento contrat clause litige conformité vertrag klausel rechtsstreit gericht""",
    "hr": """employee candidate salary payroll onboarding recruitment performance promotion
    benefit pension vacancy interview employment training headcount appraisal leave overtime
    bonus job retention workforce manager probation grievance diversity shift compensation
    hire recruit staff turnover nómina contratación empleado formación paie recrutement salarié
    formation personal gehaltsabrechnung einstellung mitarbeiter weiterbildung""",
    "engineering": """deployment server database latency throughput microservice pipeline
    repository release rollback balancer cache container cluster configuration endpoint test
    build dependency kernel incident monitoring queue schema migration replica commit protocol
    compiler memory certificate deploy refactor benchmark debug provision production staging
    software servidor despliegue incidencia serveur déploiement logiciel bereitstellung
    datenbank störung""",
    "marketing": """campaign brand audience conversion engagement advertisement influencer
    newsletter landing market segment promotion slogan press click social loyalty survey
    competitor launch funnel impression persona sponsorship webinar customer journey price
    advertise rebrand digital campaña publicidad cliente marca campagne publicité marque
    kampagne werbung kunde""",
    "travel": """flight hotel itinerary boarding passport visa luggage airport departure arrival
    reservation layover train ticket rental check-in insurance diem terminal destination
    excursion accommodation shuttle agent seat upgrade customs tour timetable voucher travel
    traveller trip booking vuelo reserva viaje pasaporte equipaje vol hôtel réservation voyage
    bagage flug buchung reise reisepass gepäck""",
    "science": """hypothesis experiment sample specimen laboratory measurement spectrum molecule
    protein genome reagent microscope statistical dataset control variable catalyst temperature
    observation enzyme isotope simulation peer publication grant calibration particle sediment
    cell interval replicate spectrometer research experimento muestra laboratorio investigación
    hipótesis expérience échantillon recherche hypothèse experiment probe labor forschung
    hypothese""",
}

_WORD: Final = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_CHUNK: Final = re.compile(
    r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*(?:[ \t]+[^\W\d_]+(?:['\u2019-][^\W\d_]+)*)*"
)
_WORDS_AND_NUMBERS: Final = re.compile(r"[^\W_]+(?:['\u2019.,-][^\W_]+)*")
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+|\n+")
_VOWEL_GROUP: Final = re.compile(r"[aeiouyàáâäèéêëìíîïòóôöùúûü]+")
_LETTERS: Final = re.compile(r"[^\W\d_]+")
_NOT_NEWLINE: Final = re.compile(r"[^\n]")
_BLANK: Final = "|"  # neither a letter, a chunk's space nor a sentence end
MAX_NGRAM: Final = 3
MIN_TERM_CHARS: Final = 3


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """A light plural-stripping stemmer, enough to match topic vocabularies."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


_TOPIC_TERMS: Final = {
    topic: frozenset(_stem(w) for w in words.lower().split())
    for topic, words in _TOPIC_TEXT.items()
}
_TERM_TOPICS: Final[dict[str, tuple[str, ...]]] = {}
for _name, _vocabulary in _TOPIC_TERMS.items():
    for _word in _vocabulary:
        _TERM_TOPICS[_word] = (*_TERM_TOPICS.get(_word, ()), _name)


@dataclass(frozen=True, slots=True)
class IdfTable:
    """Document frequencies of words over ``documents`` texts."""

    documents: int
    df: Mapping[str, int]
    _weights: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def idf(self, word: str) -> float:
        return math.log((self.documents + 1) / (self.df.get(word, 0) + 1)) + 1.0

    @property
    def max_idf(self) -> float:
        return math.log(self.documents + 1) + 1.0

    def weights(self) -> Mapping[str, float]:
        """``idf(w) / max_idf`` of every word in the table (unseen words weigh 1.0)."""
        return self._weights

    def __post_init__(self) -> None:
        top = self.max_idf
        weights = {w: self.idf(w) / top for w in self.df}
        object.__setattr__(self, "_weights", weights)  # frozen: computed once, here

    def to_json(self) -> str:
        return json.dumps({"documents": self.documents, "df": dict(sorted(self.df.items()))})

    @classmethod
    def from_json(cls, raw: str, *, where: str = "IDF table") -> IdfTable:
        try:
            data = json.loads(raw)
            documents = int(data["documents"])
            df = {str(k): int(v) for k, v in data["df"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where}: not an IDF table ({exc})") from exc
        if documents < 1:
            raise ValueError(f"{where}: 'documents' must be at least 1, got {documents}")
        return cls(documents, df)


def build_idf(texts: Iterable[str], *, min_df: int = 2) -> IdfTable:
    """Fit an IDF table on ``texts``, keeping words seen in at least ``min_df`` documents."""
    df: Counter[str] = Counter()
    documents = 0
    for text in texts:
        documents += 1
        df.update({w.lower() for w in _WORD.findall(text)})
    if documents == 0:
        raise ValueError("build_idf: no documents")
    return IdfTable(documents, {w: n for w, n in df.items() if n >= min_df})


@cache
def default_idf() -> IdfTable:
    """The packaged table, fitted on the default corpus (seed 7, 2,745 documents)."""
    # Next to this module, not importlib.resources.files("docproc"): under pytest the
    # name "docproc" can be the tests/docproc package, which shadows this one.
    path = Path(__file__).with_name("data") / "idf.json"
    return IdfTable.from_json(path.read_text(encoding="utf-8"), where=str(path))


# --- analysis ----------------------------------------------------------------------------


class _Chunk(NamedTuple):
    """Words between punctuation or numbers, inside one sentence."""

    sentence: int
    initial: bool  # the chunk starts its sentence
    words: list[str]
    lowered: list[str]


def analyse(
    text: str,
    *,
    top_k: int = 10,
    idf: IdfTable | None = None,
    findings: Iterable[risk.Finding] | None = None,
) -> dict[str, Any]:
    """Keywords, language, topic and reading statistics of ``text`` (a JSON-able dict).

    ``findings`` are ``text``'s sensitive spans if already detected (default:
    :func:`docproc.risk.detect`); no keyword contains a word of any of them.
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    found = risk.detect(text) if findings is None else list(findings)
    blanked, parts = _blank(text, found), sensitive_parts(text, found)
    sentences = [s.strip() for s in _SENTENCE_END.split(blanked) if s.strip()]
    chunks = [
        _Chunk(index, m.start() == 0, m.group().split(), m.group().lower().split())
        for index, sentence in enumerate(sentences)
        for m in _CHUNK.finditer(sentence)
    ]
    tf = Counter(w for chunk in chunks for w in chunk.lowered)
    language = _language(tf)
    topic, topic_scores = _topic(tf)
    stop = STOPWORDS.get(language, STOPWORDS["en"])
    blocked = sensitive_words(tf, parts)
    keywords = _keywords(chunks, tf, len(sentences), stop, blocked, idf, top_k)
    return {
        "keywords": keywords,
        "language": language,
        "topic": topic,
        "topic_scores": topic_scores,
        "stats": _stats(text, len(sentences), tf),
    }


def sensitive_parts(text: str, findings: Iterable[risk.Finding] | None = None) -> frozenset[str]:
    """The lower-cased runs of `MIN_TERM_CHARS` letters or more in ``text``'s sensitive spans.

    ``findings`` default to :func:`docproc.risk.detect`'s; no keyword may contain a part.
    """
    found = risk.detect(text) if findings is None else findings
    return frozenset(
        w.lower()
        for f in found
        for w in _LETTERS.findall(text, f.start, f.end)
        if len(w) >= MIN_TERM_CHARS
    )


def sensitive_words(words: Iterable[str], parts: frozenset[str]) -> frozenset[str]:
    """The ``words`` with a sensitive part ("bank", "woodgrove-bank": ``x@woodgrove-bank.com``)."""
    if not parts:
        return parts
    return frozenset(w for w in words if not parts.isdisjoint(_LETTERS.findall(w.lower())))


def _blank(text: str, findings: Iterable[risk.Finding]) -> str:
    """``text`` with every finding's characters but newlines replaced by ``_BLANK``.

    A blanked span breaks a chunk (no n-gram reaches across it) and keeps the text's
    offsets and newlines, so the sentence boundaries are those of the original.
    """
    pieces: list[str] = []
    done = 0
    for f in sorted(findings, key=lambda f: f.start):
        start = max(f.start, done)
        if start < f.end:
            pieces += (text[done:start], _NOT_NEWLINE.sub(_BLANK, text[start : f.end]))
            done = f.end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _language(tf: Counter[str]) -> str:
    counts = {lang: sum(n for w, n in tf.items() if w in stop) for lang, stop in STOPWORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] >= 3 else "und"


def _topic(tf: Counter[str]) -> tuple[str, dict[str, float]]:
    hits: Counter[str] = Counter()
    for word, n in tf.items():
        for topic in _TERM_TOPICS.get(_stem(word), ()):
            hits[topic] += n
    total = sum(hits.values())
    scores = {t: round(hits[t] / total, 3) if total else 0.0 for t in _TOPIC_TERMS}
    if total < 3:
        return "general", scores
    return max(scores, key=lambda t: (scores[t], t)), scores


def _term_scores(
    chunks: list[_Chunk],
    tf: Counter[str],
    pairs: Counter[tuple[str, str]],
    n_sentences: int,
    stop: frozenset[str],
) -> dict[str, float]:
    """YAKE's single-term score ``S(t)`` for every content term (lower is better).

    ``pairs`` counts adjacent words in a chunk. An occurrence has a left neighbour
    unless it starts its chunk, so the left co-occurrences of ``t`` number
    ``TF(t)`` minus its chunk starts (and the right ones, minus its chunk ends).
    """
    content = [w for w in tf if len(w) >= MIN_TERM_CHARS and w not in stop]
    if not content:
        return {}
    upper: Counter[str] = Counter()
    acronym: Counter[str] = Counter()
    for chunk in chunks:
        if chunk.words != chunk.lowered:  # the chunk has a capital letter
            _count_capitals(chunk, upper, acronym)
    starts = Counter(chunk.lowered[0] for chunk in chunks)
    ends = Counter(chunk.lowered[-1] for chunk in chunks)
    left_kinds = Counter(b for _, b in pairs)
    right_kinds = Counter(a for a, _ in pairs)
    sentences_of: dict[str, list[int]] = {}
    # distinct (word, sentence) pairs in text order, so each list is ascending
    for word, sentence in dict.fromkeys((w, c.sentence) for c in chunks for w in c.lowered):
        sentences_of.setdefault(word, []).append(sentence)
    tfs = [tf[w] for w in content]
    mean_tf, std_tf, max_tf = statistics.fmean(tfs), statistics.pstdev(tfs), max(tfs)
    norm_tf, per_sentence = mean_tf + std_tf, 1.0 / max(1, n_sentences)
    scores: dict[str, float] = {}
    for word in content:
        n = tf[word]
        casing = max(upper[word], acronym[word]) / (1.0 + math.log(n))
        seen = sentences_of[word]
        mid = len(seen) // 2
        median = float(seen[mid]) if len(seen) % 2 else (seen[mid - 1] + seen[mid]) / 2
        left, right = n - starts[word], n - ends[word]
        dl = left_kinds[word] / left if left else 0.0
        dr = right_kinds[word] / right if right else 0.0
        rel = 1.0 + (dl + dr) * n / max_tf
        scores[word] = (
            rel
            * math.log(math.log(3.0 + median))
            / (casing + n / norm_tf / rel + len(seen) * per_sentence / rel)
        )
    return scores


def _count_capitals(chunk: _Chunk, upper: Counter[str], acronym: Counter[str]) -> None:
    """Count acronyms, and capitalised words that do not start their sentence."""
    for k, word in enumerate(chunk.words):
        if word[0].isupper():
            if len(word) > 1 and word.isupper():
                acronym[chunk.lowered[k]] += 1
            elif k or not chunk.initial:
                upper[chunk.lowered[k]] += 1


def _candidates(
    chunks: list[_Chunk],
    tf: Counter[str],
    pairs: Counter[tuple[str, str]],
    content: Mapping[str, float],
) -> Counter[tuple[str, ...]]:
    """Counts of the 1..3-grams whose first and last words are content terms."""
    counts: Counter[tuple[str, ...]] = Counter({(w,): tf[w] for w in content})
    counts.update({p: n for p, n in pairs.items() if p[0] in content and p[1] in content})
    counts.update(
        gram
        for chunk in chunks
        if len(chunk.lowered) > 2
        for gram in zip(chunk.lowered, chunk.lowered[1:], chunk.lowered[2:], strict=False)
        if gram[0] in content and gram[2] in content
    )
    return counts


def _surface(chunks: list[_Chunk], key: tuple[str, ...]) -> str:
    """How ``key`` is written: its first occurrence not at a sentence start, else the first."""
    first: str | None = None
    n, head, wanted = len(key), key[0], list(key)
    for chunk in chunks:
        lowered = chunk.lowered
        if head not in lowered:
            continue
        for i in range(lowered.index(head), len(lowered) - n + 1):
            if lowered[i] == head and lowered[i : i + n] == wanted:
                surface = " ".join(chunk.words[i : i + n])
                if i or not chunk.initial:
                    return surface
                first = first or surface
    return first if first is not None else " ".join(key)


def _keywords(
    chunks: list[_Chunk],
    tf: Counter[str],
    n_sentences: int,
    stop: frozenset[str],
    blocked: frozenset[str],
    idf: IdfTable | None,
    top_k: int,
) -> list[dict[str, Any]]:
    """The ``top_k`` best keywords; none contains a word of ``blocked`` (sensitive words)."""
    if top_k == 0:
        return []
    table = idf if idf is not None else default_idf()
    pairs: Counter[tuple[str, str]] = Counter()
    for chunk in chunks:
        pairs.update(zip(chunk.lowered, chunk.lowered[1:], strict=False))
    term_score = _term_scores(chunks, tf, pairs, n_sentences, stop | blocked)
    weights = table.weights()
    both = {w: (s, weights.get(w, 1.0)) for w, s in term_score.items()}
    ranked: list[tuple[float, tuple[str, ...]]] = []
    for key, count in _candidates(chunks, tf, pairs, term_score).items():
        if blocked and not blocked.isdisjoint(key):
            continue  # a sensitive word in the middle of a 3-gram
        if len(key) == 1:
            score, weight = both[key[0]]
            ranked.append((score / (count * (1.0 + score)) / weight, key))
            continue
        prod, total, idf_sum, n = 1.0, 0.0, 0.0, 0
        for w in key:
            pair = both.get(w)
            if pair is not None:
                prod *= pair[0]
                total += pair[0]
                idf_sum += pair[1]
                n += 1
        ranked.append((prod / (count * (1.0 + total)) / (idf_sum / n), key))
    ranked.sort()
    chosen: list[tuple[float, tuple[str, ...], set[str]]] = []
    for score, key in ranked:
        words = {w for w in key if w in term_score}
        if any(words <= other or other <= words for _, _, other in chosen):
            continue
        chosen.append((score, key, words))
        if len(chosen) == top_k:
            break
    best = chosen[0][0] if chosen else 1.0
    return [
        {"term": _surface(chunks, key), "score": round(best / s, 4) if s else 1.0}
        for s, key, _ in chosen
    ]


@lru_cache(maxsize=1 << 16)
def _syllables(word: str) -> int:
    groups = len(_VOWEL_GROUP.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1  # silent final e
    return max(1, groups)


def _stats(text: str, n_sentences: int, tf: Counter[str]) -> dict[str, Any]:
    words = len(_WORDS_AND_NUMBERS.findall(text))
    per_sentence = words / n_sentences if n_sentences else 0.0
    letter_words = tf.total()
    syllables = sum(_syllables(w) * n for w, n in tf.items())
    flesch = (
        206.835 - 1.015 * per_sentence - 84.6 * syllables / letter_words if letter_words else 0.0
    )
    return {
        "chars": len(text),
        "words": words,
        "sentences": n_sentences,
        "avg_sentence_words": round(per_sentence, 2),
        "flesch_reading_ease": round(flesch, 2),
    }


def load_idf(path: Path) -> IdfTable:
    """Read an IDF table written by ``eblocks docproc idf``."""
    return IdfTable.from_json(path.read_text(encoding="utf-8"), where=str(path))
