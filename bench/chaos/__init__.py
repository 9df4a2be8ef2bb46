"""The chaos run: the product's shape of workload on real `durable worker`s while workers are
killed, Temporal and PostgreSQL restart and events come twice or early; then a ledger check.
See bench/README.md ("Chaos") and `python -m bench.chaos --help`."""
