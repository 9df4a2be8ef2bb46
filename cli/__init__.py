"""The `durable` command line."""
