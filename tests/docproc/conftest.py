"""Shared fixtures of the docproc tests: one generated corpus per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from docproc.corpus import CorpusStats, generate

CORPUS_COUNT = 200
CORPUS_SEED = 7


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusStats]:
    """The first 200 documents of the default corpus (``--seed 7``)."""
    out = tmp_path_factory.mktemp("corpus")
    return out, generate(out, CORPUS_COUNT, CORPUS_SEED)
