"""Knobs: settings of a target (or a module's process) that the load side turns for one phase.

A service declares its knobs as a pydantic model whose every field has a default (the value outside a
phase) and which forbids extra fields, and serves them with `KnobRoutes(model, apply).routes()`:

  GET /admin/knobs   the values in force
  PUT /admin/knobs   replace them: the fields given, every other one back to its default (`{}` resets);
                     an unknown knob or a bad value is a 422 naming it, and nothing changes

Both need the admin token (`admin_route`). The harness sets a scenario's knobs when a test starts and
resets them when it stops (harness/loadgen/knobs.py); the scenario declares them (`Knob` in the spec).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.routing import APIRoute
from pydantic import BaseModel

from targets.common import admin_route


class KnobRoutes:
    """The knobs of one service: `apply(values)` makes them take effect (it must not fail on valid values)."""

    def __init__(self, model: type[BaseModel], apply: Callable[[BaseModel], None]) -> None:
        if model.model_config.get("extra") != "forbid":
            raise ValueError(f"{model.__name__} must forbid extra fields, so an unknown knob is a 422")
        self.model, self.apply = model, apply
        self.values = model()
        apply(self.values)

    async def get(self) -> BaseModel:
        return self.values

    def set(self, values: BaseModel) -> BaseModel:
        self.apply(values)
        self.values = values
        return values

    def routes(self) -> list[APIRoute]:
        async def put(values):
            return self.set(values)

        put.__annotations__ = {"values": self.model}  # the body's model, for FastAPI's validation and OpenAPI
        return [admin_route("/admin/knobs", self.get, methods=["GET"], response_model=self.model,
                            summary="the knobs in force"),
                admin_route("/admin/knobs", put, methods=["PUT"], response_model=self.model,
                            summary="set the knobs for a phase: the ones given, every other back to its default")]
