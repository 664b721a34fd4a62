"""Tiny wording helpers shared by the core (checkpoint descriptions) and the views."""
from __future__ import annotations


def plural(n: int, word: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
