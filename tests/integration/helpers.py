"""Run the real `eblocks` CLI in a sandbox and clean up every process it starts.

A `Sandbox` owns one temporary directory: the working directory of every
command it runs, the state root passed as ``--state-dir``, logs of background
commands and whatever files a test writes. Every process it starts is found
again by pid (from the Popen objects, from ``supervisor.json``/``state.json``
and by scanning for command lines that name the sandbox's directory), so
`Sandbox.close` can stop the mesh with ``eblocks down``, then kill whatever is
left — checking each pid still belongs to the process it recorded.

Every wait is bounded: commands run with a timeout and `wait_for` gives up
with an assertion error.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psutil

from eblocks.security.admin import AdminAccess
from eblocks.security.local import CLI_HOLDER
from eblocks.spec import load_spec

__all__ = [
    "CLI_TIMEOUT",
    "REPO",
    "TEXTPIPE",
    "Document",
    "Run",
    "Sandbox",
    "alive",
    "expected_counts",
    "make_documents",
    "parse_table",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[2]
TEXTPIPE = REPO / "examples" / "textpipe"
CLI = (sys.executable, "-m", "eblocks")
CLI_TIMEOUT = 90.0
"""Upper bound of any one CLI command (`up` waits at most ready_timeout + 10 s)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """A finished CLI command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"$ eblocks {' '.join(self.args)}\n-> exit {self.returncode} "
            f"in {self.elapsed:.1f}s\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


def alive(proc: psutil.Process) -> bool:
    """Whether ``proc`` (the very process recorded, not a reused pid) still runs."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _base_env() -> dict[str, str]:
    drop = ("LINES", "TEXTPIPE_OUT", "FORCE_COLOR")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBLOCKS_") and k not in drop}
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    env["COLUMNS"] = "200"  # rich tables on one line each, whatever the pid and port widths
    return env


class Sandbox:
    """A temporary working dir + state dir; runs `eblocks` there and cleans up after."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.state_root = root / "state"
        self.logs = root / "logs"
        for folder in (self.work, self.state_root, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.env = _base_env()
        self._popens: list[tuple[subprocess.Popen[bytes], list[Any]]] = []
        self._known: dict[int, psutil.Process] = {}

    # -- files -----------------------------------------------------------------

    def write(self, name: str, text: str) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def copy_textpipe(self, folder: str = "textpipe") -> Path:
        """Copy the textpipe example (spec + handlers) into the sandbox; return the spec."""
        dest = self.work / folder
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("mesh.yaml", "handlers.py"):
            shutil.copyfile(TEXTPIPE / name, dest / name)
        return dest / "mesh.yaml"

    def mesh_dir(self, mesh: str) -> Path:
        return self.state_root / mesh

    def supervisor_info(self, mesh: str) -> dict[str, Any]:
        return _read_json(self.mesh_dir(mesh) / "supervisor.json")

    def state_info(self, mesh: str) -> dict[str, Any]:
        return _read_json(self.mesh_dir(mesh) / "state.json")

    def instances(self, mesh: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.state_info(mesh).get("instances", [])
        return rows

    # -- admin API ---------------------------------------------------------------

    def admin_access(self, mesh: str) -> AdminAccess:
        """How the CLI reaches ``mesh``'s admin ports (https with its SVID where TLS)."""
        state = self.mesh_dir(mesh)
        return AdminAccess.of(load_spec(state / "spec.yaml"), state, CLI_HOLDER)

    def admin(
        self,
        mesh: str,
        row: Mapping[str, Any],
        path: str,
        *,
        data: bytes | None = None,
        timeout: float = 5.0,
    ) -> tuple[int, bytes]:
        """``GET`` (or with ``data``, ``POST``) ``path`` on an instance's admin port as the CLI."""
        access = self.admin_access(mesh)
        request = urllib.request.Request(access.row_url(row, path), data=data)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=access.ssl) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def admin_ok(self, mesh: str, row: Mapping[str, Any], path: str, timeout: float = 5.0) -> bytes:
        """The body of a 200 answer from an instance's admin port (anything else fails)."""
        status, body = self.admin(mesh, row, path, timeout=timeout)
        assert status == 200, f"{row.get('instance')} {path}: {status} {body[:200]!r}"
        return body

    # -- commands ----------------------------------------------------------------

    def eblocks(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = CLI_TIMEOUT,
    ) -> Run:
        """Run one CLI command to its end (bounded by ``timeout``)."""
        began = time.monotonic()
        try:
            done = subprocess.run(
                [*CLI, *args],
                cwd=self.work,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        finally:
            self.record()
        return Run(
            tuple(args),
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
            time.monotonic() - began,
        )

    def cmd(self, name: str, *args: str, **kwargs: Any) -> Run:
        """A command that takes ``--state-dir``: the sandbox's state root is passed."""
        return self.eblocks(name, *args, "--state-dir", str(self.state_root), **kwargs)

    def up(self, spec: Path, env: Mapping[str, str] | None = None) -> Run:
        """``eblocks up SPEC --detach``."""
        return self.cmd("up", str(spec), "--detach", env=env)

    def start(
        self,
        name: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        state_dir: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Start a command in the background; output to logs/.

        ``state_dir``: append ``--state-dir`` (off for a command whose arguments
        end with another program's, as ``eblocks proxy ... -- CMD``).
        """
        tag = f"{len(self._popens)}-{name}"
        out = (self.logs / f"{tag}.out").open("wb")
        err = (self.logs / f"{tag}.err").open("wb")
        proc = subprocess.Popen(
            [*CLI, name, *args, *(("--state-dir", str(self.state_root)) if state_dir else ())],
            cwd=self.work,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        self._popens.append((proc, [out, err]))
        with contextlib.suppress(psutil.Error):
            self._known[proc.pid] = psutil.Process(proc.pid)
        return proc

    def output_of(self, proc: subprocess.Popen[bytes]) -> tuple[str, str]:
        """The stdout and stderr (so far) of a command started with `start`."""
        for started, files in self._popens:
            if started is proc:
                out, err = (Path(f.name) for f in files)
                return out.read_text(errors="replace"), err.read_text(errors="replace")
        raise KeyError(proc.pid)

    # -- processes ---------------------------------------------------------------

    def record(self) -> list[psutil.Process]:
        """Remember (and return) every live process of the sandbox's meshes."""
        found: list[psutil.Process] = []
        for mesh in self._meshes():
            pids = [self.supervisor_info(mesh).get("pid")]
            pids += [row.get("pid") for row in self.instances(mesh)]
            for pid in pids:
                proc = self._ours(pid)
                if proc is not None:
                    found.append(proc)
        for proc in self._scan():
            if proc.pid not in {p.pid for p in found}:
                found.append(proc)
        return found

    def processes(self) -> list[psutil.Process]:
        """Every process this sandbox started that is still alive."""
        self.record()
        return [p for p in self._known.values() if alive(p)]

    def _ours(self, pid: Any) -> psutil.Process | None:
        """The process ``pid`` if it runs with this sandbox in its command line."""
        if not isinstance(pid, int) or pid <= 0:
            return None
        known = self._known.get(pid)
        if known is not None and alive(known):
            return known
        try:
            proc = psutil.Process(pid)
            if str(self.root) not in " ".join(proc.cmdline()):
                return None  # a reused pid: somebody else's process
        except psutil.Error:
            return None
        if not alive(proc):
            return None
        self._known[pid] = proc
        return proc

    def _scan(self) -> list[psutil.Process]:
        """Live processes whose command line names this sandbox (found by pid)."""
        found = []
        marker = str(self.root)
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and marker in " ".join(proc.info["cmdline"] or ()):
                    known = self._ours(proc.pid)
                    if known is not None:
                        found.append(known)
        return found

    def _meshes(self) -> list[str]:
        return sorted(p.parent.name for p in self.state_root.glob("*/supervisor.json"))

    # -- cleanup -----------------------------------------------------------------

    def close(self) -> list[str]:
        """Stop everything; returns the leftovers that `eblocks down` did not stop."""
        self.record()
        for mesh in self._meshes():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cmd("down", "--mesh", mesh, "--timeout", "20", timeout=60)
        for proc, _ in self._popens:  # background commands the test did not finish
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        leftovers = self.processes()
        described = [f"pid {p.pid}: {' '.join(_cmdline(p))}" for p in leftovers]
        for leftover in leftovers:
            with contextlib.suppress(psutil.Error):
                leftover.kill()  # psutil refuses if the pid now belongs to another process
        _, still = psutil.wait_procs(leftovers, timeout=10)
        described += [f"pid {p.pid} survived SIGKILL" for p in still if alive(p)]
        for _, files in self._popens:
            for fh in files:
                fh.close()
        shutil.rmtree(self.root, ignore_errors=True)
        return described


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return ["?"]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# -- rich tables ----------------------------------------------------------------

_VERTICAL = re.compile(r"[│┃|]")


def parse_table(text: str) -> list[list[str]]:
    """The cells of every row of the rich tables in ``text`` (header rows included)."""
    rows = []
    for line in text.splitlines():
        if not _VERTICAL.search(line):
            continue
        cells = [c.strip() for c in _VERTICAL.split(line)]
        if cells and cells[0] == "":
            cells = cells[1:]
        if cells and cells[-1] == "":
            cells = cells[:-1]
        if cells:
            rows.append(cells)
    return rows


# -- documents for the textpipe example -----------------------------------------

# (as written in a document, the token the pipeline must count). The expectation
# is stated here, not derived from the handler code: NFKC, case folding, words
# with inner apostrophes/hyphens kept whole.
_WORDS: tuple[tuple[str, str], ...] = (
    ("fox", "fox"),
    ("river", "river"),
    ("mesh", "mesh"),
    ("lantern", "lantern"),
    ("orbit", "orbit"),
    ("meadow", "meadow"),
    ("copper", "copper"),
    ("harbor", "harbor"),
    ("signal", "signal"),
    ("quiet", "quiet"),
    ("stone", "stone"),
    ("ember", "ember"),
    ("Straße", "strasse"),
    ("STRASSE", "strasse"),
    ("café", "café"),
    ("cafe\u0301", "café"),  # e + combining acute composes to é under NFKC
    ("\ufb01sh", "fish"),  # the ﬁ ligature
    ("\uff26\uff2f\uff38", "fox"),  # fullwidth FOX
    ("don't", "don't"),
    ("don\u2019t", "don\u2019t"),
    ("well-known", "well-known"),
    ("ΚΟΣΜΟΣ", "κοσμοσ"),
    ("κόσμος", "κόσμοσ"),
)
_STOPS = ("the", "The", "THE", "and", "of", "is", "a", "to", "With", "for", "it", "in")
_SEPARATORS = (" ", " ", " ", "  ", "\n", "\t", " \r\n ")
_PUNCT = ("", "", "", ",", ".", "!", "?", ";", ":", "...")


@dataclass(frozen=True)
class Document:
    name: str
    body: bytes
    tokens: tuple[str, ...]

    @property
    def expected(self) -> dict[str, Any]:
        return expected_counts(self.tokens)


def _surface(word: str, rng: random.Random) -> str:
    roll = rng.random()
    if word.isascii() and roll < 0.15:
        word = word.upper()
    elif word.isascii() and roll < 0.3:
        word = word.capitalize()
    if rng.random() < 0.1:
        word = f'"{word}"'
    elif rng.random() < 0.05:
        word = f"({word})"
    return word + rng.choice(_PUNCT)


def make_documents(count: int, seed: int) -> list[Document]:
    """``count`` documents whose token lists are known by construction."""
    rng = random.Random(seed)
    docs = []
    for index in range(count):
        parts: list[str] = []
        tokens: list[str] = []
        length = 0 if index == 0 else rng.randint(0, 80)  # the first one is empty
        # a few favourite words per document, so counts differ and top-5 means something
        favourites = rng.sample(_WORDS, 4)
        for _ in range(length):
            roll = rng.random()
            if roll < 0.2:
                parts.append(_surface(rng.choice(_STOPS), rng))
                continue
            surface, token = rng.choice(favourites) if roll < 0.6 else rng.choice(_WORDS)
            parts.append(_surface(surface, rng))
            tokens.append(token)
        text = "".join(part + rng.choice(_SEPARATORS) for part in parts)
        docs.append(Document(f"doc-{index:04d}.txt", text.encode("utf-8"), tuple(tokens)))
    return docs


def expected_counts(tokens: Sequence[str]) -> dict[str, Any]:
    """What the count stage answers: totals, and the top five (ties: first seen first)."""
    counts: dict[str, int] = collections.OrderedDict()
    for token in tokens:
        counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])  # stable: first seen first
    return {
        "words": len(tokens),
        "distinct": len(counts),
        "top": [[word, n] for word, n in ranked[:5]],
    }


STORE_VERSIONS = """

def store(msg: Message) -> bytes:
    return b"store"


def store_v2(msg: Message) -> bytes:
    return b"store-v2"
"""
"""Handler source: two versions of a block that answer with their names (canary tests)."""
