"""The README runs as written (issue 23, point 1).

Every ```sh, ```bash, ```console and ```python block of README.md runs, in the order of the document, in one
temporary directory, so a block uses the files earlier blocks made, as a reader following the README would:
shell blocks with bash (``-e -o pipefail``, the venv's ``bin`` first on ``PATH``), Python blocks in a
subprocess of the venv's Python. An HTML comment on the line right before a block's fence says how to treat it:

``<!-- illustration: WHY -->``
    not run (a synopsis, placeholders, a server that never ends); the skip and its reason show in the test
    report, with the test that covers it where there is one.
``<!-- readme-test: file NAME -->``
    a block that is a file (a ```toml fleet or timeline): written to NAME before any block runs.
``<!-- readme-test: short -->``
    each ``battsim run`` of the block simulates ``BATTSIM_README_SPAN`` virtual days (default 0.5) instead of its
    ``--days``/``--until``; ``BATTSIM_README_SPAN=full`` runs the spans as written.
``<!-- readme-test: server -->``
    run against a ``battsim serve`` the test starts on 127.0.0.1 on a free port (``localhost:8003`` in the
    block becomes that port), whose data directory is the working directory; ``curl`` fails on an HTTP error.

The DuckDB command line, where it is not installed, is stood in for by the ``duckdb`` Python package (the
README says any DuckDB client opens a recording). ``docs/`` is linked into the working directory, as the
README's commands run from a checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from test_service_helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
RUNNABLE = {"sh": "shell", "bash": "shell", "console": "shell", "python": "python"}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^<!--\s*(illustration|readme-test)\s*:?\s*(.*?)\s*-->\s*$")
SPAN_ENV = "BATTSIM_README_SPAN"
DEFAULT_SPAN_DAYS = "0.5"  # half a virtual day per shortened run: the whole README in about three minutes
BLOCK_TIMEOUT_S = 240


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)  # illustration / file / short / server -> argument

    @property
    def kind(self) -> str | None:
        return RUNNABLE.get(self.language)

    @property
    def label(self) -> str:
        return f"README.md:{self.line} ({self.language})"


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block, with the markers on the comment lines right above its fence."""
    lines = text.splitlines()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        markers: dict[str, str] = {}
        above = line - 2  # index of the line before the fence
        while above >= 0 and (found := MARKER.match(lines[above].strip())):
            kind, argument = found.groups()
            if kind == "illustration":
                markers["illustration"] = argument or "illustration only"
            else:
                word, _, rest = argument.partition(" ")
                markers[word] = rest.strip()
            above -= 1
        blocks.append(Block(line, match.group(1), match.group(2), markers))
    return blocks


def shell_commands(block: Block) -> str:
    """The block as bash runs it: a ```console block's ``$ `` lines only."""
    if block.language != "console":
        return block.text
    return "\n".join(line[2:] for line in block.text.splitlines() if line.startswith("$ "))


def shortened(script: str, span: str) -> str:
    """Each ``battsim run`` simulating ``span`` days instead of its ``--days``/``--until``."""
    joined = re.sub(r"[ \t]*\\\n\s*", " ", script)  # continuation lines joined

    def one_run(match: re.Match) -> str:
        command = re.sub(r"--days\s+\S+", f"--days {span}", match.group(0))
        command = re.sub(r"--until\s+\S+", f"--days {span}", command)
        return command if "--days" in command else command.replace("battsim run", f"battsim run --days {span}", 1)

    return re.sub(r"battsim run\b[^\n]*", one_run, joined)


@dataclass
class Outcome:
    block: Block
    returncode: int
    output: str

    def describe(self) -> str:
        return (f"{self.block.label} exited with {self.returncode}:\n{textwrap.indent(self.block.text.strip(), '    ')}"
                f"\n  output (last lines):\n{textwrap.indent(self.output.strip()[-1500:], '    ')}")


class Workspace:
    """The directory the README's blocks run in, with the stand-ins and the server they need."""

    def __init__(self, path: Path, span: str):
        self.path, self.span = path, span
        self.bin = path / ".readme-bin"
        self.bin.mkdir(parents=True)
        (path / "docs").symlink_to(ROOT / "docs")
        self.env = {**os.environ, "PATH": f"{self.bin}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
        if shutil.which("duckdb", path=self.env["PATH"]) is None:
            self._script("duckdb", f"#!{sys.executable}\nimport sys, duckdb\n"
                         "print(duckdb.connect(sys.argv[1], read_only=True).sql(sys.argv[2]))\n")
        self._script("curl", f"#!/bin/sh\nexec {shutil.which('curl') or 'curl'} --silent --show-error --fail-with-body "
                             "\"$@\"\n")
        self.server: subprocess.Popen | None = None
        self.port: int | None = None

    def _script(self, name: str, text: str) -> None:
        script = self.bin / name
        script.write_text(text)
        script.chmod(0o755)

    def write_files(self, blocks: list[Block]) -> None:
        for block in blocks:
            if "file" in block.markers:
                (self.path / block.markers["file"]).write_text(block.text, encoding="utf-8")

    def run(self, block: Block) -> Outcome:
        if block.kind == "python":
            command = [sys.executable, "-c", block.text]
        else:
            script = shell_commands(block)
            if "short" in block.markers and self.span != "full":
                script = shortened(script, self.span)
            if "server" in block.markers:
                port = self.serve()
                script = re.sub(r"(localhost|127\.0\.0\.1):8003", f"127.0.0.1:{port}", script)
            command = ["bash", "-e", "-o", "pipefail", "-c", script]
        try:
            done = subprocess.run(command, cwd=self.path, env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired as expired:
            return Outcome(block, -1, f"timed out after {BLOCK_TIMEOUT_S} s\n{expired.output or ''}")
        return Outcome(block, done.returncode, done.stdout)

    def serve(self) -> int:
        """A ``battsim serve`` on a free loopback port, serving this directory's recordings (started once)."""
        if self.server is None:
            self.port = free_port()
            self.server = subprocess.Popen(
                [str(VENV_BIN / "battsim"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.path / "served")], cwd=self.path, env=self.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            import httpx

            def healthy() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(healthy, timeout=60)
        return self.port

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.timeout(900)  # the whole README in order, serially: 2-4 minutes here, more on a loaded machine
def test_the_readme_runs_as_written(tmp_path):
    span = os.environ.get(SPAN_ENV, DEFAULT_SPAN_DAYS)
    workspace = Workspace(tmp_path / "readme", span)
    workspace.write_files(BLOCKS)
    try:
        outcomes = [workspace.run(block) for block in BLOCKS if block.kind and "illustration" not in block.markers]
    finally:
        workspace.close()
    failed = [outcome for outcome in outcomes if outcome.returncode != 0]
    assert outcomes, "no runnable block found in README.md"
    assert not failed, f"{len(failed)} of {len(outcomes)} README blocks failed:\n\n" + "\n\n".join(
        outcome.describe() for outcome in failed)


@pytest.mark.parametrize("block", [b for b in BLOCKS if "illustration" in b.markers], ids=lambda b: b.label)
def test_illustration_blocks_say_why_they_are_not_run(block):
    assert block.markers["illustration"], f"{block.label}: say why it is an illustration"
    pytest.skip(f"{block.label}: illustration: {block.markers['illustration']}")


# ------------------------------------------------------------------------------------ the harness itself
def test_markers_and_shortening_are_read_as_documented():
    text = ("<!-- readme-test: short -->\n```sh\nbattsim run --preset thailand-full --days 365 \\\n"
            "    --out y.duckdb\nbattsim run --start 2026-04-01 --until 2026-05-01 --out a.duckdb\n"
            "battsim run --out w.duckdb\n```\n\n<!-- illustration: a synopsis -->\n```sh\nbattsim serve [--port]\n```\n"
            "<!-- readme-test: file fleet.toml -->\n```toml\nname = 'x'\n```\n")
    short, synopsis, fleet = parse_blocks(text)
    assert short.markers == {"short": ""} and synopsis.markers == {"illustration": "a synopsis"}
    assert fleet.markers == {"file": "fleet.toml"} and fleet.kind is None
    assert shortened(short.text, "0.5").splitlines() == [
        "battsim run --preset thailand-full --days 0.5 --out y.duckdb",
        "battsim run --start 2026-04-01 --days 0.5 --out a.duckdb",
        "battsim run --days 0.5 --out w.duckdb",
    ]


def test_a_broken_block_fails_and_says_where(tmp_path):
    workspace = Workspace(tmp_path / "w", "1")
    broken = workspace.run(Block(7, "sh", "battsim presets\nbattsim run --preset nowhere --out x.duckdb\n"))
    assert broken.returncode == 2 and "README.md:7" in broken.describe() and "--preset" in broken.output
    assert workspace.run(Block(9, "python", "import battsim\nraise SystemExit(3)\n")).returncode == 3
    assert workspace.run(Block(11, "console", "$ battsim presets\nthis line is output, not run\n")).returncode == 0


def test_the_performance_table_is_the_one_bench_results_give():
    """The README's performance table is generated from bench/results.json (tools/bench_table.py), never typed."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import bench_table
    finally:
        sys.path.remove(str(ROOT / "tools"))
    import json

    readme = README.read_text(encoding="utf-8")
    expected = bench_table.rewrite(readme, bench_table.table(json.loads(bench_table.RESULTS.read_text())))
    assert readme == expected, "README.md's performance table is stale: run .venv/bin/python tools/bench_table.py"
