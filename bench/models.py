"""The workload's input and output, shared by both versions so neither pays for the other."""

from __future__ import annotations

from pydantic import BaseModel


class Inp(BaseModel):
    n: int = 1
    steps: int = 1
    fast: bool = False


class Out(BaseModel):
    n: int
