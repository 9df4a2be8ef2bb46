"""The HTTP API: a small ASGI app on the same DurableClient the CLI uses."""

from .app import create_app

__all__ = ["create_app"]
