"""Run `durable` workflows on Temporal: each `DurableWorkflow` is a Temporal workflow type named
by its id, each step an activity (or a local activity for short steps), sleeps are timers, and
invoked workflows are child workflows."""

from .host import *  # noqa: F403
from .host import __all__ as __all__
