"""The element types, one module each, and the registry that names them."""

from __future__ import annotations

from domain.elements.agent import Agent
from domain.elements.base import ElementFailure, ElementType, Outcome, Retry
from domain.elements.condition import Condition
from domain.elements.delay import Delay
from domain.elements.end import End
from domain.elements.fail import Fail
from domain.elements.foreach import Foreach
from domain.elements.http import Http
from domain.elements.join import Join
from domain.elements.signal import Signal
from domain.elements.subprocess import Subprocess
from domain.elements.transform import Transform
from domain.elements.trigger import Trigger

ELEMENT_TYPES: dict[str, ElementType] = {
    t.name: t
    for t in (
        Trigger(),
        Transform(),
        Condition(),
        Join(),
        Delay(),
        Http(),
        Agent(),
        End(),
        Fail(),
        Signal(),
        Subprocess(),
        Foreach(),
    )
}

__all__ = ["ELEMENT_TYPES", "ElementFailure", "ElementType", "Outcome", "Retry"]
