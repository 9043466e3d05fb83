"""`make demo`: start the textpipe mesh, push 300 documents through it, stop it.

Each step is the CLI command a user would type; the demo prints it before it
runs it, so the output doubles as a tour.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "textpipe" / "mesh.yaml"
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Service meshes move networking concerns out of application code.",
    "Every block carries its own discovery, security and monitoring.",
    "Pipelines, manager-worker pools and divide-and-conquer are declared in YAML.",
    "A retried document must never be stored twice.",
    "Latency percentiles tell more than averages do.",
]


def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> int:
    cmd = [str(ROOT / ".venv" / "bin" / "eblocks"), *args]
    print(f"\n$ eblocks {shlex.join(args)}", flush=True)
    return subprocess.run(cmd, env=env, check=check, timeout=300).returncode


def make_documents(folder: Path, count: int) -> None:
    rng = random.Random(7)
    for i in range(count):
        text = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(3, 30)))
        (folder / f"doc-{i:04d}.txt").write_text(text, encoding="utf-8")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="eblocks-demo-") as tmp:
        docs, results, effects = Path(tmp, "docs"), Path(tmp, "results"), Path(tmp, "effects")
        docs.mkdir()
        make_documents(docs, 300)
        env = {**os.environ, "TEXTPIPE_OUT": str(effects)}
        state = ["--state-dir", str(Path(tmp, "state"))]
        run("validate", str(SPEC))
        run("up", str(SPEC), "--detach", *state, env=env)
        try:
            run("call", "ingest", "--data", "Eblocks makes the mesh part of the block.", *state)
            print()
            code = run(
                "submit",
                "ingest",
                str(docs),
                "--concurrency",
                "16",
                "--out",
                str(results),
                *state,
                check=False,
            )
            stored = len(list(effects.glob("*.json")))
            print(f"\n{stored} documents stored exactly once by the last stage (in {effects})")
            run("status", *state)
        finally:
            run("down", *state)
    return code


if __name__ == "__main__":
    sys.exit(main())
