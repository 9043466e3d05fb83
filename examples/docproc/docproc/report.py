"""The experiment's results as JSON (everything), Markdown (tables) and a PNG chart."""

from __future__ import annotations

from pathlib import Path

import orjson
from rich.table import Table

from docproc.experiment import PAPER, Experiment, VariantResult

__all__ = ["console_table", "to_markdown", "write_results"]

_HEAD = (
    "scenario",
    "workers",
    "docs/s",
    "vs A",
    "paper docs/s",
    "paper vs A",
    "RT mean ms",
    "RT p95 ms",
    "PRT ms",
    "CT ms",
    "ideal docs/s",
    "efficiency",
    "up s",
    "failed",
    "mismatched",
)


def _rows(exp: Experiment) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for v in exp.variants:
        base = "A-large" if v.name in ("A-large", "D") else "A"
        a = next((x for x in exp.variants if x.name == base), None)
        paper = PAPER.get(v.name)
        rows.append(
            (
                v.name,
                str(v.workers),
                f"{v.throughput:.1f}",
                f"{v.throughput / a.throughput:.2f}x" if a and a.throughput else "-",
                f"{paper:.1f}" if paper else "-",
                f"{paper / PAPER['A']:.2f}x" if paper else "-",
                f"{v.rt_mean * 1000:.1f}",
                f"{v.rt_p95 * 1000:.1f}",
                f"{v.prt_mean * 1000:.1f}",
                f"{v.ct_mean * 1000:.1f}",
                f"{v.ideal:.1f}",
                f"{v.efficiency:.2f}",
                f"{v.startup_seconds:.1f}",
                str(v.failed),
                str(v.mismatched),
            )
        )
    return rows


def console_table(exp: Experiment) -> Table:
    table = Table(title="docproc experiment (paper's Table 3 side by side)")
    for column in _HEAD:
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in _rows(exp):
        table.add_row(*row)
    return table


def _md_table(head: tuple[str, ...] | list[str], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _resources(variants: list[VariantResult]) -> list[str]:
    blocks = sorted({b for v in variants for b in v.cpu_seconds})
    head = ["scenario", *(f"{b} CPU s / peak MB" for b in blocks)]
    rows = []
    for v in variants:
        cells = [
            f"{v.cpu_seconds[b]:.1f} / {v.peak_rss.get(b, 0) / 2**20:.0f}"
            if b in v.cpu_seconds
            else "-"
            for b in blocks
        ]
        rows.append((v.name, *cells))
    return _md_table(head, rows)


def _batch(exp: Experiment) -> str:
    size = int(exp.settings.get("read_batch", 1))
    if size <= 1:
        return "one document per request"
    return f"{size} documents per request (one fetch query, one decrypt task)"


def to_markdown(exp: Experiment, chart: str | None = "docproc.png") -> str:
    an = exp.analysis
    lines = [
        "# docproc experiment",
        "",
        f"Run {exp.created} on {exp.machine.get('cpus')} x {exp.machine.get('cpu')} "
        f"({exp.machine.get('platform')}, Python {exp.machine.get('python')}); "
        f"load average at start {exp.machine.get('loadavg_start')}.",
        f"Corpus: {exp.corpus.get('documents')} documents, mean "
        f"{exp.corpus.get('bytes_mean', 0):.0f} B (sd {exp.corpus.get('bytes_stdev', 0):.0f}, "
        f"min {exp.corpus.get('bytes_min')}, max {exp.corpus.get('bytes_max')}); "
        f"{exp.settings.get('concurrency')} requests in flight.",
        "",
        f"Command: `{exp.settings.get('command', 'eblocks bench docproc --paper')}`",
        "",
        *_md_table(_HEAD, _rows(exp)),
        "",
        "RT: response time per document; PRT: the sum of the stages' own processing "
        "times; CT = RT - PRT (network, queues, the mesh). Ideal: this machine's cores "
        "divided by the CPU cost of the variant's stages measured in one process "
        "without a mesh, measured before each variant (each B round) and pooled: the "
        "best over the variants with the same stages, so efficiency is a lower bound. "
        "B times the read path only "
        f"(fetch → decrypt pool), {_batch(exp)}, after an untimed warm-up, over one "
        "store ingested once: B1, B2, B4 take turns for several rounds, each from a clean "
        "`up`, and each B row is its median round (all in the JSON, `pass_throughputs`). "
        "A and C time ingest and read-back of each document.",
        "",
        "## Stage costs without the mesh (CPU ms per document)",
        "",
        "At the start of the run:",
        "",
        *_md_table(["stage", "ms"], [(s, f"{c * 1000:.2f}") for s, c in exp.stage_costs.items()]),
        "",
        "Just before each variant (one of the measurements its ideal pools):",
        "",
        *_md_table(
            ["scenario", "stages, ms per document"],
            [
                (v.name, ", ".join(f"{s} {c * 1000:.2f}" for s, c in v.stage_costs.items()))
                for v in exp.variants
            ],
        ),
        "",
        "## CPU seconds and peak RSS per block",
        "",
        *_resources(exp.variants),
        "",
        "## Analysis",
        "",
    ]
    if "bottleneck_of_A" in an:
        means = ", ".join(f"{s} {ms:.2f}" for s, ms in an["stage_means_A_ms"].items())
        lines.append(f"- Bottleneck of A: **{an['bottleneck_of_A']}** (stage ms: {means}).")
    lines.append(f"- Decrypt's share of the per-document CPU: {an['decrypt_share_of_cpu']:.0%}.")
    for name, g in an.get("C_over_A", {}).items():
        paper = f"{g['paper_gain']:+.0%}" if g["paper_gain"] is not None else "not reported"
        lines.append(
            f"- {name} over A: measured {g['measured_gain']:+.0%}; Amdahl bound "
            f"{g['amdahl_bound']:+.0%} on this machine's cores "
            f"({g['amdahl_bound_unbounded_cores']:+.0%} with a core per worker); paper {paper}."
        )
    if an.get("cpu_busy"):
        busy = ", ".join(f"{name} {share:.0%}" for name, share in an["cpu_busy"].items())
        lines.append(
            f"- CPU busy over the timed run (every block and the client, share of "
            f"{exp.settings.get('cores')} cores): {busy}."
        )
    if "D_over_A_large" in an:
        lines.append(
            f"- Large documents: D (divide & conquer) / A = {an['D_over_A_large']:.2f}x "
            "(the vs A column compares A-large and D with A-large)."
        )
    if "B2_over_B1" in an:
        rounds = ", ".join(f"{r:.2f}" for r in an.get("B2_over_B1_rounds", []))
        lines.append(
            f"- B2 / B1 = {an['B2_over_B1']:.2f}x, the median of the rounds' ratios "
            f"({rounds}) (target ≥ 1.7x)."
        )
    if "best_efficiency" in an:
        best = an["best_efficiency"]
        lines.append(
            f"- Best efficiency: {best['variant']} at {best['efficiency']:.2f} of the ideal "
            "(target ≥ 0.85)."
        )
    if chart:
        lines += ["", f"![throughput per scenario]({chart})"]
    return "\n".join(lines) + "\n"


def write_chart(exp: Experiment, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [v.name for v in exp.variants]
    measured = [v.throughput for v in exp.variants]
    paper = [PAPER.get(n, 0.0) for n in names]
    ideal = [v.ideal for v in exp.variants]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], measured, width=0.4, label="measured")
    left.scatter(list(xs), ideal, marker="_", s=400, color="black", label="ideal (this machine)")
    left.set_xticks(list(xs), names)
    left.set_ylabel("documents / s")
    left.set_title("Eblocks on this machine")
    left.legend()
    right.bar(list(xs), paper, color="tab:orange")
    right.set_xticks(list(xs), names)
    right.set_title("paper, Table 3 (no B1/C1 reported)")
    right.set_ylabel("documents / s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_results(exp: Experiment, out: Path, name: str = "docproc") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.json", out / f"{name}.md"]
    written[0].write_bytes(orjson.dumps(exp.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    written[1].write_text(to_markdown(exp, chart=f"{name}.png"), encoding="utf-8")
    if write_chart(exp, out / f"{name}.png"):
        written.append(out / f"{name}.png")
    return written
