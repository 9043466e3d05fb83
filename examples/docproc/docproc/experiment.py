"""The paper's throughput experiment: scenarios A, B(1,2,4), C(1,2,4) on one corpus.

Each variant runs from a clean ``eblocks up`` (own state root and database, a
shared key store so key generation is not measured). What is measured per
variant:

- throughput: documents per second over the timed run;
- RT: response time per document, mean and p95 (first send to reply);
- PRT: pattern response time, the sum of the stages' own processing times,
  which each stage reports (``x-docproc-timings``);
- CT: coupling time, RT - PRT (network, queues, the mesh);
- CPU seconds and peak RSS per block (psutil, /proc VmHWM);
- scale-up time: ``eblocks up`` until every instance is ready.

The machine's *ideal* for a variant is this machine's cores divided by the
per-document CPU cost of the stages that variant runs, measured in one process
with no mesh at all (`stage_costs`); efficiency = throughput / ideal.

Scenario B measures the read path: the corpus is ingested first (untimed),
then every stored document is read back through ``fetch`` and the pool of
decrypt workers. A and C measure the whole path, ingest and read-back, per
document. docs/docproc.md maps them to the paper's scenarios.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from docproc import envelope, risk, semantic
from docproc.drive import DocResult, Document, drive
from docproc.keystore import LEVELS, KeyStore
from docproc.meshrun import RunningMesh, with_replicas
from docproc.store import Record, open_store
from eblocks import load_spec
from eblocks.batch import Caller, percentile
from eblocks.bench.machine import describe

__all__ = [
    "PAPER",
    "Variant",
    "VariantResult",
    "amdahl",
    "large_variants",
    "paper_variants",
    "run_variant",
    "stage_costs",
]

EXAMPLES = Path(__file__).resolve().parent.parent
PAPER: dict[str, float] = {"A": 12.4, "B2": 15.8, "B4": 17.5, "C2": 16.3, "C4": 18.1}
"""The paper's Table 3, documents per second."""

CLIENT = "(client)"
"""The benchmark's own process, in the CPU columns: it drives the load on the same cores."""

WARM_UP_ROUNDS = 3
"""B's untimed warm-up reads ``WARM_UP_ROUNDS * concurrency`` documents, one per request."""

READ_PASSES = 3
"""B times the read-back this many times in one ``up`` and keeps the median pass:
reading is idempotent, and on a shared machine one pass of ~4 s is at the mercy of
the neighbours."""

WRITE_STAGES = ("semantic", "risk", "encrypt", "store")
READ_STAGES = ("fetch", "decrypt")


@dataclass(frozen=True, slots=True)
class Variant:
    """One column of the experiment: a scenario spec at a pool size."""

    name: str
    spec: Path
    pattern: str
    workers: int = 1
    read_path: bool = False  # B: ingest first (untimed), then time the read-back
    batch: int = 1  # B: documents per read request (and per decrypt task)
    large: bool = False  # runs on the corpus of large documents (A-large, D)

    @property
    def stages(self) -> tuple[str, ...]:
        return READ_STAGES if self.read_path else (*WRITE_STAGES, "decrypt")


def paper_variants(examples: Path = EXAMPLES, *, batch: int = 1) -> list[Variant]:
    """A, B1, B2, B4, C1, C2, C4 as the paper ran them; B reads ``batch`` documents a task."""
    out = [Variant("A", examples / "scenario-a.yaml", "process")]
    spec_b = examples / "scenario-b.yaml"
    for n in (1, 2, 4):
        out.append(Variant(f"B{n}", spec_b, "readback", n, read_path=True, batch=batch))
    for n in (1, 2, 4):
        out.append(Variant(f"C{n}", examples / "scenario-c.yaml", "process", n))
    return out


def large_variants(examples: Path = EXAMPLES) -> list[Variant]:
    """Large documents through A (one semantic instance) and D (split across two)."""
    return [
        Variant("A-large", examples / "scenario-a.yaml", "process", large=True),
        Variant("D", examples / "scenario-d.yaml", "process", workers=2, large=True),
    ]


@dataclass
class VariantResult:
    name: str
    workers: int
    documents: int
    failed: int
    mismatched: int
    elapsed: float
    throughput: float
    rt_mean: float
    rt_p95: float
    prt_mean: float
    ct_mean: float
    stage_means: dict[str, float]
    cpu_seconds: dict[str, float]
    peak_rss: dict[str, int]
    startup_seconds: float
    ideal: float = 0.0
    failures: list[str] = field(default_factory=list)
    stage_costs: dict[str, float] = field(default_factory=dict)
    """CPU seconds per document of the stages it runs, measured just before it (its ideal)."""
    pass_throughputs: list[float] = field(default_factory=list)
    """Every timed pass's documents per second (B: `READ_PASSES`; the row is the median)."""

    @property
    def efficiency(self) -> float:
        return self.throughput / self.ideal if self.ideal > 0 else 0.0


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def summarise(
    variant: Variant,
    results: Sequence[DocResult],
    elapsed: float,
    mesh: RunningMesh,
    cpu_before: dict[str, float],
    client_cpu: float,
) -> VariantResult:
    ok = [r for r in results if r.ok]
    stats = mesh.process_stats()
    stage_names = sorted({s for r in ok for s in r.timings})
    return VariantResult(
        name=variant.name,
        workers=variant.workers,
        documents=len(results),
        failed=len(results) - len(ok),
        mismatched=sum(1 for r in ok if not r.verified),
        elapsed=elapsed,
        throughput=len(ok) / elapsed if elapsed > 0 else 0.0,
        rt_mean=_mean([r.rt for r in ok]),
        rt_p95=percentile([r.rt for r in ok], 95),
        prt_mean=_mean([r.prt for r in ok]),
        ct_mean=_mean([r.rt - r.prt for r in ok]),
        stage_means={s: _mean([r.timings[s] for r in ok if s in r.timings]) for s in stage_names},
        cpu_seconds={
            **{b: s.cpu_seconds - cpu_before.get(b, 0.0) for b, s in stats.items()},
            CLIENT: client_cpu - cpu_before.get(CLIENT, client_cpu),
        },
        peak_rss={b: s.peak_rss for b, s in stats.items()},
        startup_seconds=mesh.startup_seconds,
        failures=sorted(r.name for r in results if not r.ok)[:20],
    )


async def _timed_run(
    variant: Variant,
    mesh: RunningMesh,
    docs: Sequence[Document],
    concurrency: int,
    progress: Callable[[str, int, int], None] | None,
) -> VariantResult:
    async with mesh.client() as client:
        if variant.read_path:  # B: fill the store first; only the read-back is timed
            stored, _ = await drive(client, "ingest", docs, concurrency=concurrency)
            ids = {r.name: r.doc_id for r in stored if r.ok}
            docs = [Document(d.name, d.body, ids.get(d.name)) for d in docs if d.name in ids]
            # Untimed warm-up, one document a request: opens the read path's connections
            # (TLS handshakes) and has the workers load their keys, as `stage_costs` does.
            warm = docs[: WARM_UP_ROUNDS * concurrency]
            await drive(client, variant.pattern, warm, read_path=True, concurrency=concurrency)
        passes = [
            await _timed_pass(variant, mesh, client, docs, concurrency, progress)
            for _ in range(READ_PASSES if variant.read_path else 1)
        ]
    chosen = sorted(passes, key=lambda p: p.throughput)[len(passes) // 2]
    chosen.pass_throughputs = [p.throughput for p in passes]
    return chosen


async def _timed_pass(
    variant: Variant,
    mesh: RunningMesh,
    client: Caller,
    docs: Sequence[Document],
    concurrency: int,
    progress: Callable[[str, int, int], None] | None,
) -> VariantResult:
    before = {b: s.cpu_seconds for b, s in mesh.process_stats().items()}
    before[CLIENT] = time.process_time()
    count = 0

    def tick(_: DocResult) -> None:
        nonlocal count
        count += 1
        if progress is not None:
            progress(variant.name, count, len(docs))

    began = time.perf_counter()
    results, _ = await drive(
        client,
        variant.pattern,
        docs,
        read_path=variant.read_path,
        batch=variant.batch,
        concurrency=concurrency,
        progress=tick,
    )
    elapsed = time.perf_counter() - began
    client_cpu = time.process_time()
    return summarise(variant, results, elapsed, mesh, before, client_cpu)


def run_variant(
    variant: Variant,
    docs: Sequence[Document],
    *,
    keys: Path,
    workdir: Path,
    concurrency: int = 16,
    progress: Callable[[str, int, int], None] | None = None,
) -> VariantResult:
    """Run one variant from a clean ``up`` to ``down``."""
    root = workdir / variant.name
    spec = variant.spec
    if "decrypt-manager" in _blocks(spec):  # a pool: run it with the variant's workers
        spec = with_replicas(spec, {"decrypt": variant.workers}, root / "spec")
    env = {"DOCPROC_HOME": str(root / "data"), "DOCPROC_KEYS": str(keys)}
    env.pop("DATABASE_URL", None)
    mesh = RunningMesh(spec, root / "state", env)
    with mesh:
        return asyncio.run(_timed_run(variant, mesh, docs, concurrency, progress))


def _blocks(spec: Path) -> set[str]:
    return set(load_spec(spec).blocks)


# -- the machine's ideal ------------------------------------------------------------------


def stage_costs(
    docs: Sequence[Document], keys: KeyStore, sample: int = 200, *, batch: int = 1
) -> dict[str, float]:
    """Per-document CPU seconds of each stage, in this process, without any mesh.

    With ``batch`` > 1, ``fetch`` is read as the batched read path reads it
    (`Store.get_many`, ``batch`` ids a query), its cost shared by the batch.
    """
    picked = list(docs[:sample])
    costs: dict[str, list[float]] = {s: [] for s in (*WRITE_STAGES, *READ_STAGES)}
    for level in LEVELS:  # load every key once, as a running block has
        warm = envelope.seal(b"warm-up", level, keys, aad=b"warm-up")
        envelope.open_envelope(warm, keys, aad=b"warm-up")

    async def run(store_path: Path) -> None:
        docs_store = await open_store(None, default_path=store_path)
        ids: list[str] = []
        try:
            for doc in picked:
                text = doc.body.decode("utf-8", errors="replace")
                t = time.process_time()
                sem = semantic.analyse(text)
                costs["semantic"].append(time.process_time() - t)
                t = time.process_time()
                graded = risk.assess(text, sem)
                costs["risk"].append(time.process_time() - t)
                key = f"ideal-{doc.name}"
                t = time.process_time()
                sealed = envelope.seal(doc.body, graded["level"], keys, aad=key.encode())
                costs["encrypt"].append(time.process_time() - t)
                record = Record(
                    idempotency_key=key,
                    name=doc.name,
                    size=len(doc.body),
                    sha256=hashlib.sha256(doc.body).hexdigest(),
                    level=graded["level"],
                    topic=sem.get("topic", ""),
                    keywords=[k["term"] for k in sem.get("keywords", [])],
                    semantic=sem,
                    risk=graded,
                    envelope=sealed.to_dict(),
                )
                t = time.process_time()
                doc_id, _ = await docs_store.put(record)
                costs["store"].append(time.process_time() - t)
                t = time.process_time()
                found = await docs_store.get(doc_id)
                costs["fetch"].append(time.process_time() - t)
                assert found is not None
                t = time.process_time()
                envelope.open_envelope(
                    envelope.Envelope.from_dict(found.record.envelope), keys, aad=key.encode()
                )
                costs["decrypt"].append(time.process_time() - t)
                ids.append(doc_id)
            if batch > 1:
                costs["fetch"] = []
                for start in range(0, len(ids), batch):
                    chunk = ids[start : start + batch]
                    t = time.process_time()
                    assert len(await docs_store.get_many(chunk)) == len(chunk)
                    costs["fetch"] += [(time.process_time() - t) / len(chunk)] * len(chunk)
        finally:
            await docs_store.close()

    with tempfile.TemporaryDirectory(prefix="docproc-ideal-") as tmp:
        asyncio.run(run(Path(tmp) / "ideal.sqlite3"))
    return {stage: _mean(values) for stage, values in costs.items()}


def ideal_throughput(costs: dict[str, float], stages: Sequence[str], cores: int) -> float:
    total = sum(costs[s] for s in stages)
    return cores / total if total > 0 else 0.0


def amdahl(share: float, n: int) -> float:
    """Amdahl's bound on the speed-up when a ``share`` of the work runs ``n`` ways."""
    return 1.0 / ((1.0 - share) + share / n)


# -- the whole experiment ------------------------------------------------------------------


@dataclass
class Experiment:
    created: str
    machine: dict[str, object]
    settings: dict[str, Any]
    corpus: dict[str, Any]
    stage_costs: dict[str, float]
    variants: list[VariantResult]
    analysis: dict[str, Any]
    stage_costs_batched: dict[str, float] = field(default_factory=dict)
    """The read path's stage costs when B reads in batches (``fetch`` per document of a batch)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row, variant in zip(data["variants"], self.variants, strict=True):
            row["efficiency"] = variant.efficiency
        return data


def analyse(
    variants: Sequence[VariantResult], costs: dict[str, float], cores: int
) -> dict[str, Any]:
    """Bottleneck of A, C's gain over A next to the Amdahl bound and the paper."""
    by_name = {v.name: v for v in variants}
    out: dict[str, Any] = {}
    a = by_name.get("A")
    if a is not None and a.stage_means:
        out["bottleneck_of_A"] = max(a.stage_means, key=lambda s: a.stage_means[s])
        out["stage_means_A_ms"] = {s: v * 1000 for s, v in a.stage_means.items()}
    write_read = (*WRITE_STAGES, "decrypt")
    total = sum(costs[s] for s in write_read)
    share = costs["decrypt"] / total if total > 0 else 0.0
    out["decrypt_share_of_cpu"] = share
    gains: dict[str, Any] = {}
    for n in (1, 2, 4):
        c = by_name.get(f"C{n}")
        if a is None or c is None or a.throughput <= 0:
            continue
        gains[f"C{n}"] = {
            "measured_gain": c.throughput / a.throughput - 1,
            "amdahl_bound": amdahl(share, min(n, cores)) - 1,
            "amdahl_bound_unbounded_cores": amdahl(share, n) - 1,
            "paper_gain": PAPER[f"C{n}"] / PAPER["A"] - 1 if f"C{n}" in PAPER else None,
        }
    out["C_over_A"] = gains
    a_large, d = by_name.get("A-large"), by_name.get("D")
    if a_large and d and a_large.throughput > 0:
        out["D_over_A_large"] = d.throughput / a_large.throughput
    b1, b2 = by_name.get("B1"), by_name.get("B2")
    if b1 and b2 and b1.throughput > 0:
        out["B2_over_B1"] = b2.throughput / b1.throughput
    best = max(variants, key=lambda v: v.efficiency, default=None)
    if best is not None:
        out["best_efficiency"] = {"variant": best.name, "efficiency": best.efficiency}
    return out


def run_experiment(
    variants: Sequence[Variant],
    docs: Sequence[Document],
    *,
    keys_dir: Path,
    corpus: dict[str, Any],
    large_docs: Sequence[Document] = (),
    concurrency: int = 16,
    progress: Callable[[str, int, int], None] | None = None,
) -> Experiment:
    keys = KeyStore(keys_dir)
    keys.ensure()
    cores = os.cpu_count() or 1
    costs = stage_costs(docs, keys)
    batch = max((v.batch for v in variants if v.read_path), default=1)
    batched = stage_costs(docs, keys, batch=batch) if batch > 1 else {}
    results: list[VariantResult] = []
    with tempfile.TemporaryDirectory(prefix="docproc-bench-") as tmp:
        for variant in variants:
            ran_on = large_docs if variant.large else docs
            # The ideal is measured again just before each variant: this machine's
            # speed drifts by tens of percent over minutes (shared host).
            own = stage_costs(
                ran_on, keys, sample=20 if variant.large else 200, batch=variant.batch
            )
            result = run_variant(
                variant,
                ran_on,
                keys=keys_dir,
                workdir=Path(tmp),
                concurrency=concurrency,
                progress=progress,
            )
            result.ideal = ideal_throughput(own, variant.stages, cores)
            result.stage_costs = {stage: own[stage] for stage in variant.stages}
            results.append(result)
    return Experiment(
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=describe(),
        settings={
            "concurrency": concurrency,
            "cores": cores,
            "documents": len(docs),
            "read_batch": batch,
        },
        corpus=corpus,
        stage_costs=costs,
        variants=results,
        analysis=analyse(results, costs, cores),
        stage_costs_batched=batched,
    )


def corpus_summary(docs: Sequence[Document]) -> dict[str, Any]:
    sizes = [len(d.body) for d in docs]
    return {
        "documents": len(docs),
        "bytes_mean": _mean(sizes),
        "bytes_stdev": statistics.pstdev(sizes) if sizes else 0.0,
        "bytes_min": min(sizes, default=0),
        "bytes_max": max(sizes, default=0),
    }
