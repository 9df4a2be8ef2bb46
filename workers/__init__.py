"""Composition roots: settings -> clients -> Temporal worker, and the embedded dev stack."""
