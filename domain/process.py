"""The Process aggregate (a definition's versions and audit) and the project it is filed in.

Ids come from the tenant and a natural key (uuid5), so a project or app is
"created on first use of its name" without a lookup: writing its first event
twice collides in the store and one writer wins.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.definition import ProcessDefinition
from domain.errors import InvalidCommand
from domain.events import AppCreated, Event, ProcessFiled, ProcessSaved, ProjectCreated


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

    def audit(self) -> dict[str, Any]:
        first, last = self.versions[1], self.versions[self.version]
        return {
            "created_at": first.at,
            "created_by": first.actor,
            "modified_at": last.at,
            "modified_by": last.actor,
        }


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
