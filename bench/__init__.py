"""Benchmarks: the same workload with raw temporalio and with `durable`, on one server."""
