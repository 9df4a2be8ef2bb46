"""Placing agent sessions on the worker fleet: the route step resolves a project's execution
route to a pool with live capacity and stamps it on the session."""

from .steps import (
    FleetActivities,
    Routed,
    RouteSession,
    WaitingForCapacity,
    route_session,
)

__all__ = ["FleetActivities", "RouteSession", "Routed", "WaitingForCapacity", "route_session"]
