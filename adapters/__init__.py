"""Provider adapters that run `durable` workflows."""
