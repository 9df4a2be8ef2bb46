"""Which task queue a project's agent sessions run on: a simple route table for now, until the
worker fleet resolves execution routes (allowed, preferred, forbidden, fallback) per project."""

from __future__ import annotations

from collections.abc import Mapping


class ProjectRoutes:
    """`project -> task queue`, with `*` for every other project.

    A project with no route (and no `*`) runs where the event ingress starts runs (its task
    queue), so an empty table changes nothing.
    """

    def __init__(self, table: Mapping[str, str] | None = None) -> None:
        self.table = dict(table or {})
        for project, queue in self.table.items():
            if not project or not queue:
                raise ValueError(f"a route needs a project and a task queue: {project!r}={queue!r}")

    @classmethod
    def parse(cls, text: str | None) -> ProjectRoutes:
        """Read `proj-a=pool-a,proj-b=pool-b,*=pool-default` (DURABLE_AGENT_ROUTES)."""
        table: dict[str, str] = {}
        for item in (text or "").split(","):
            if not item.strip():
                continue
            project, sep, queue = item.partition("=")
            if not sep or not project.strip() or not queue.strip():
                raise ValueError(
                    f"bad agent route {item.strip()!r}: expected project=task-queue, e.g. "
                    f"'triage=pool-a,*=durable'"
                )
            table[project.strip()] = queue.strip()
        return cls(table)

    def task_queue(self, project: str) -> str | None:
        """The task queue of `project`'s sessions, or None for the default."""
        return self.table.get(project) or self.table.get("*")

    def __repr__(self) -> str:
        return f"ProjectRoutes({self.table!r})"
