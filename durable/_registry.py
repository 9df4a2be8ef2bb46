"""The registry of workflows and activities a worker runs and call sites can name."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from ._activity import Activity, implemented_by
from ._errors import InvalidDefinition, UnknownActivity, UnknownWorkflow
from ._events import Event, EventError, event_type_name
from ._schedule import Schedule
from ._workflow import DurableWorkflow


class Registry:
    """Workflows by id, activities by name. Built explicitly in a composition root."""

    def __init__(
        self,
        workflows: Iterable[DurableWorkflow[Any, Any]] = (),
        activities: Iterable[Activity[Any, Any]] = (),
        events: Iterable[type[Event[Any]]] = (),
        schedules: Iterable[Schedule] = (),
    ) -> None:
        self._workflows: dict[str, DurableWorkflow[Any, Any]] = {}
        self._activities: dict[str, Activity[Any, Any]] = {}
        self._events: dict[str, type[Event[Any]]] = {}
        self._schedules: dict[str, Schedule] = {}
        for wf in workflows:
            self.add_workflow(wf)
        for act in activities:
            self.add_activity(act)
        for event in events:
            self.add_event(event)
        for schedule in schedules:
            self.add_schedule(schedule)

    def add_schedule(self, schedule: Schedule) -> None:
        """Register a schedule of a registered workflow; its input is checked against the
        workflow's input model here, so a bad one fails at start-up, not at 9 on Monday."""
        wf = self.workflow(schedule.workflow)
        try:
            wf.input_type.model_validate(schedule.input)
        except ValueError as err:
            raise InvalidDefinition(
                f"schedule {schedule.id!r}: its input does not fit {wf.id!r}'s input: {err}"
            ) from None
        existing = self._schedules.get(schedule.id)
        if existing is not None and existing != schedule:
            raise InvalidDefinition(f"two different schedules are registered as {schedule.id!r}")
        self._schedules[schedule.id] = schedule

    @property
    def schedules(self) -> list[Schedule]:
        return [s for _, s in sorted(self._schedules.items())]

    def add_event(self, event: type[Event[Any]]) -> None:
        """Register an event type, so call sites can send it by name (CLI, HTTP)."""
        name = event_type_name(event)
        existing = self._events.get(name)
        if existing is not None and existing is not event:
            raise InvalidDefinition(f"two event types are registered as {name!r}")
        self._events[name] = event

    def event_type(self, name: str) -> type[Event[Any]]:
        try:
            return self._events[name]
        except KeyError:
            known = ", ".join(sorted(self._events)) or "none"
            raise EventError(f"unknown event type {name!r}; registered: {known}") from None

    @property
    def events(self) -> list[type[Event[Any]]]:
        return [e for _, e in sorted(self._events.items())]

    def add_workflow(self, wf: DurableWorkflow[Any, Any]) -> None:
        if not isinstance(wf, DurableWorkflow):
            raise InvalidDefinition(f"expected a DurableWorkflow, got {type(wf).__name__}")
        existing = self._workflows.get(wf.id)
        if existing is not None and existing.fn is not wf.fn:
            raise InvalidDefinition(f"two different workflows are registered as {wf.id!r}")
        self._workflows[wf.id] = wf
        for event in wf.event_types:
            self.add_event(event)

    def add_activity(self, act: Activity[Any, Any]) -> None:
        existing = self._activities.get(act.name)
        if existing is not None and existing.fn is not None and existing.fn is not act.fn:
            raise InvalidDefinition(f"two implementations are registered for {act.name!r}")
        self._activities[act.name] = act

    def bind(self, instance: object) -> None:
        """Register every method of `instance` marked with `@implements(declaration)`."""
        found = 0
        for _, method in inspect.getmembers(instance, inspect.ismethod):
            declaration = implemented_by(method)
            if declaration is not None:
                self.add_activity(declaration.with_implementation(method))
                found += 1
        if not found:
            raise InvalidDefinition(f"{type(instance).__name__} implements no declared activity")

    def workflow(self, workflow_id: str) -> DurableWorkflow[Any, Any]:
        try:
            return self._workflows[workflow_id]
        except KeyError:
            raise UnknownWorkflow(workflow_id, list(self._workflows)) from None

    def activity(self, name: str) -> Activity[Any, Any]:
        try:
            return self._activities[name]
        except KeyError:
            raise UnknownActivity(f"no activity is registered as {name!r}") from None

    @property
    def workflows(self) -> list[DurableWorkflow[Any, Any]]:
        return sorted(self._workflows.values(), key=lambda wf: wf.id)

    @property
    def activities(self) -> list[Activity[Any, Any]]:
        """Registered activities that have an implementation."""
        return [a for _, a in sorted(self._activities.items()) if a.fn is not None]

    def unimplemented(self) -> list[str]:
        return sorted(name for name, a in self._activities.items() if a.fn is None)

    def merged(self, other: Registry) -> Registry:
        out = Registry(self.workflows, self._activities.values(), self.events, self.schedules)
        for wf in other.workflows:
            out.add_workflow(wf)
        for act in other._activities.values():
            out.add_activity(act)
        for schedule in other.schedules:
            out.add_schedule(schedule)
        return out
