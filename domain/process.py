"""The Process aggregate (a definition's versions and audit) and the project it is filed in.

Ids come from the tenant and a natural key (uuid5), so a project or app is
"created on first use of its name" without a lookup: writing its first event
twice collides in the store and one writer wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

from domain.definition import ProcessDefinition
from domain.errors import InvalidCommand
from domain.events import (
    AppCreated,
    Event,
    HookIssued,
    ProcessArchived,
    ProcessFiled,
    ProcessSaved,
    ProjectCreated,
)
from domain.triggers import ScheduleTrigger, Trigger, WebhookTrigger


def project_id(tenant: str, name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"loom:{tenant}:project:{name}")


def app_id(tenant: str, project: str, name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"loom:{tenant}:app:{project}\x00{name}")


class Process:
    """Every saved version of one process definition."""

    def __init__(self, process_id: str) -> None:
        self.id = process_id
        self.seq = 0
        self.versions: dict[int, ProcessSaved] = {}
        self.hooks: dict[str, str] = {}  # webhook trigger key -> its token, across versions
        self.archived: ProcessArchived | None = None

    @classmethod
    def rebuild(cls, process_id: str, events: list[Event]) -> Process:
        process = cls(process_id)
        for event in events:
            process.apply(event)
        return process

    def apply(self, event: Event) -> None:
        self.seq += 1
        if isinstance(event, ProcessSaved):
            self.versions[event.version] = event
        elif isinstance(event, HookIssued):
            self.hooks[event.key] = event.token
        elif isinstance(event, ProcessArchived):
            self.archived = event

    @property
    def version(self) -> int:
        return max(self.versions, default=0)

    def definition(self, version: int | None = None) -> ProcessSaved:
        saved = self.versions.get(version or self.version)
        if saved is None:
            raise KeyError(version)
        return saved

    def save(
        self,
        definition: ProcessDefinition,
        raw: dict[str, Any],
        *,
        expected_version: int,
        project: str,
        app: str,
        at: str,
        actor: str,
    ) -> ProcessSaved:
        if self.archived is not None:
            raise InvalidCommand(f"process {self.id} is archived")
        if expected_version != self.version:
            raise InvalidCommand(
                f"process is at version {self.version}, not {expected_version}; reload and retry"
            )
        event = ProcessSaved(
            at=at,
            actor=actor,
            version=self.version + 1,
            project_id=project,
            app_id=app,
            definition=raw,
        )
        self.apply(event)
        return event

    def issue_hooks(
        self, triggers: list[Trigger], token: Callable[[], str], at: str, actor: str
    ) -> list[HookIssued]:
        """A token for each webhook key this process never had (a kept key keeps its URL)."""
        events = [
            HookIssued(at=at, actor=actor, key=t.key, token=token())
            for t in triggers
            if isinstance(t, WebhookTrigger) and t.key not in self.hooks
        ]
        for event in events:
            self.apply(event)
        return events

    def archive(self, at: str, actor: str) -> ProcessArchived:
        if self.archived is not None:
            raise InvalidCommand(f"process {self.id} is archived already")
        event = ProcessArchived(at=at, actor=actor)
        self.apply(event)
        return event

    def triggers(self) -> list[Trigger]:
        """The live triggers: the latest version's, none once archived."""
        if self.archived is not None or not self.versions:
            return []
        raw = self.versions[self.version].definition.get("triggers") or []
        return [_trigger(t) for t in raw]

    def webhook(self, key: str) -> WebhookTrigger | None:
        for trigger in self.triggers():
            if isinstance(trigger, WebhookTrigger) and trigger.key == key:
                return trigger
        return None

    def schedules(self) -> list[ScheduleTrigger]:
        return [t for t in self.triggers() if isinstance(t, ScheduleTrigger)]

    def audit(self) -> dict[str, Any]:
        first, last = self.versions[1], self.versions[self.version]
        return {
            "created_at": first.at,
            "created_by": first.actor,
            "modified_at": last.at,
            "modified_by": last.actor,
            "archived_at": self.archived.at if self.archived else None,
            "archived_by": self.archived.actor if self.archived else None,
        }


def _trigger(raw: Any) -> Trigger:
    trigger: Trigger = msgspec.convert(raw, WebhookTrigger | ScheduleTrigger)
    return trigger


class Project:
    """A project's apps and the processes filed under them."""

    def __init__(self, project_id: str) -> None:
        self.id = project_id
        self.seq = 0
        self.name = ""
        self.created: ProjectCreated | None = None
        self.modified: Event | None = None
        self.apps: dict[str, AppCreated] = {}
        self.processes: dict[str, ProcessFiled] = {}

    @classmethod
    def rebuild(cls, project_id: str, events: list[Event]) -> Project:
        project = cls(project_id)
        for event in events:
            project.apply(event)
        return project

    def apply(self, event: Event) -> None:
        self.seq += 1
        self.modified = event
        match event:
            case ProjectCreated(name=name):
                self.name = name
                self.created = event
            case AppCreated(app_id=app):
                self.apps[app] = event
            case ProcessFiled(process_id=process):
                self.processes[process] = event

    def file(
        self,
        name: str,
        app: str,
        app_name: str,
        process: str,
        process_name: str,
        at: str,
        actor: str,
    ) -> list[Event]:
        """Events that file a process (creating the project and the app on first use)."""
        events: list[Event] = []
        if self.created is None:
            events.append(ProjectCreated(at=at, actor=actor, name=name))
        if app not in self.apps:
            events.append(AppCreated(at=at, actor=actor, app_id=app, name=app_name))
        known = self.processes.get(process)
        if known is None or known.name != process_name or known.app_id != app:
            events.append(
                ProcessFiled(at=at, actor=actor, app_id=app, process_id=process, name=process_name)
            )
        for event in events:
            self.apply(event)
        return events
