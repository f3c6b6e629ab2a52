"""How every ``battsim`` command talks to the terminal: results on stdout, messages on stderr,
and bad input refused with the flag named and exit code 2."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)
stdout = Console()


def fail(flag: str, message: str) -> NoReturn:
    """Refuse bad input: name the flag, say what is allowed, exit with code 2."""
    console.print(f"[red]error:[/red] {flag}: {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


def print_summary(rows: list[tuple[str, str]]) -> None:
    """Aligned "name  value" lines; values are never truncated (paths and commands must stay copyable)."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        stdout.print(f"{name:<{width}}  {value}", soft_wrap=True, highlight=False, markup=False)
