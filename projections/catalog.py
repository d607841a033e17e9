"""The process and project lists (the contract's GET /processes and /projects), as read models.

Each entry is a pure function of one stream: a process's summary of the
`Process` aggregate rebuilt from its stream, a project's filing of the `Project`
aggregate. The projector rebuilds an entry whenever its stream moves (streams
of definitions are short: one event per version or filing), so an entry never
depends on the order the bus delivered in; `seq` (the stream's length) lets a
store keep only the newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import msgspec

from domain.events import (
    AppCreated,
    Event,
    ProcessArchived,
    ProcessFiled,
    ProcessSaved,
    ProjectCreated,
)
from domain.ports import RecordedEvent
from domain.process import Process, Project, project_id


class ProcessSummary(msgspec.Struct, kw_only=True):
    """A process as listed: its latest version's header, without the threads."""

    process_id: str
    version: int
    latest_version: int
    versions: list[int]
    project_id: str
    app_id: str
    project: str
    app: str
    name: str
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str
    version_created_at: str
    version_created_by: str
    archived_at: str | None = None
    archived_by: str | None = None


class FiledApp(msgspec.Struct, kw_only=True):
    app_id: str
    name: str
    created_at: str
    created_by: str


class FiledProcess(msgspec.Struct, kw_only=True):
    process_id: str
    app_id: str
    name: str


class ProjectEntry(msgspec.Struct, kw_only=True):
    """A project as its stream files it: apps, and every process ever filed there."""

    project_id: str
    name: str
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str
    apps: list[FiledApp]
    processes: list[FiledProcess]


class ListedProcess(msgspec.Struct, kw_only=True):
    process_id: str
    name: str


class AppOut(msgspec.Struct, kw_only=True):
    app_id: str
    name: str
    processes: list[ListedProcess]
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str


class ProjectOut(msgspec.Struct, kw_only=True):
    """A project as GET /projects answers: its apps and the processes that live in each."""

    project_id: str
    name: str
    apps: list[AppOut]
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str


class Home(msgspec.Struct, frozen=True, array_like=True):
    """Where a process lives now: its latest version's project and app."""

    process_id: str
    project_id: str
    app_id: str


class CatalogStore(Protocol):
    """Where the lists are kept (the read model's port); entries only move forward by seq."""

    def save(
        self,
        tenant: str,
        processes: list[tuple[int, ProcessSummary]],
        projects: list[tuple[int, ProjectEntry]],
        position: int | None,
    ) -> None: ...

    def processes(self, tenant: str) -> list[ProcessSummary]: ...

    def projects(self, tenant: str) -> tuple[list[ProjectEntry], list[Home]]: ...

    def tracking(self, tenant: str) -> int: ...

    def reset(self, tenant: str) -> None: ...

    def close(self) -> None: ...


PROCESS = "process"
PROJECT = "project"


def catalog_streams(tenant: str, events: Iterable[RecordedEvent]) -> dict[str, str]:
    """The streams among `events` whose entries they change, each with its kind.

    A project's creation is also copied into the tenant's list of projects (a
    stream of its own): only the project's own stream counts.
    """
    streams: dict[str, str] = {}
    for recorded in events:
        match recorded.event:
            case ProcessSaved() | ProcessArchived():
                streams[str(recorded.stream_id)] = PROCESS
            case ProjectCreated(name=name):
                if recorded.stream_id == project_id(tenant, name):
                    streams[str(recorded.stream_id)] = PROJECT
            case AppCreated() | ProcessFiled():
                streams[str(recorded.stream_id)] = PROJECT
    return streams


def process_summary(process_id: str, events: list[Event]) -> ProcessSummary | None:
    """The listed form of a process stream (None if it holds no saved version)."""
    process = Process.rebuild(process_id, events)
    if not process.versions:
        return None
    first, latest = process.versions[1], process.versions[process.version]
    definition = latest.definition
    return ProcessSummary(
        process_id=process_id,
        version=latest.version,
        latest_version=latest.version,
        versions=sorted(process.versions),
        project_id=latest.project_id,
        app_id=latest.app_id,
        project=definition["project"],
        app=definition["app"],
        name=definition["name"],
        created_at=first.at,
        created_by=first.actor,
        modified_at=latest.at,
        modified_by=latest.actor,
        version_created_at=latest.at,
        version_created_by=latest.actor,
        archived_at=process.archived.at if process.archived else None,
        archived_by=process.archived.actor if process.archived else None,
    )


def project_entry(project_id: str, events: list[Event]) -> ProjectEntry | None:
    """The filing of a project stream (None before the project is created)."""
    project = Project.rebuild(project_id, events)
    if project.created is None or project.modified is None:
        return None
    return ProjectEntry(
        project_id=project_id,
        name=project.name,
        created_at=project.created.at,
        created_by=project.created.actor,
        modified_at=project.modified.at,
        modified_by=project.modified.actor,
        apps=[
            FiledApp(app_id=key, name=app.name, created_at=app.at, created_by=app.actor)
            for key, app in project.apps.items()
        ],
        processes=[
            FiledProcess(process_id=f.process_id, app_id=f.app_id, name=f.name)
            for f in project.processes.values()
        ],
    )


def project_tree(entries: list[ProjectEntry], homes: list[Home]) -> list[ProjectOut]:
    """The projects with each process shown only where it lives now.

    A version saved under another project or app moves the process there; the old
    project's filing stays in its history, so it is left out of the old place.
    """
    home = {h.process_id: (h.project_id, h.app_id) for h in homes}
    return [
        ProjectOut(
            project_id=entry.project_id,
            name=entry.name,
            apps=[
                AppOut(
                    app_id=app.app_id,
                    name=app.name,
                    processes=[
                        ListedProcess(process_id=f.process_id, name=f.name)
                        for f in entry.processes
                        if f.app_id == app.app_id
                        and home.get(f.process_id) == (entry.project_id, app.app_id)
                    ],
                    created_at=app.created_at,
                    created_by=app.created_by,
                    modified_at=app.created_at,
                    modified_by=app.created_by,
                )
                for app in entry.apps
            ],
            created_at=entry.created_at,
            created_by=entry.created_by,
            modified_at=entry.modified_at,
            modified_by=entry.modified_by,
        )
        for entry in entries
    ]
