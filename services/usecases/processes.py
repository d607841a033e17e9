"""Process commands and queries: save a definition (new or next version), read it back.

A save writes the process's new version and the project's filing (project and
app created on first use of their names) in one transaction, so a refused or
failed save leaves nothing behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

from domain.clock import iso, parse_iso
from domain.definition import Graph, compile_definition, parse_definition
from domain.errors import DefinitionInvalid, InvalidCommand, Problem
from domain.events import HookIssued, ProcessSaved
from domain.ports import Append, Clock, ConcurrencyError, EventStore, RecordedEvent
from domain.process import Process, Project, app_id, project_id
from domain.schedules import live_schedules
from domain.triggers import ScheduleTrigger, check_triggers, next_tick, next_ticks
from projections.catalog import CatalogStore, ProcessSummary, ProjectOut, project_tree
from projections.hooks import Hook, HookIndex
from projections.schedules import ScheduleIndex, ScheduleRow
from services.usecases.agents import saved_versions
from services.usecases.blocking import blocking
from services.usecases.catalog import DefinitionCatalog, UnknownProcess
from services.usecases.errors import Conflict, Invalid, NotFound
from services.usecases.ids import new_id
from services.usecases.signals import check_signal_schemas

Publish = Callable[[str, Sequence[RecordedEvent]], Awaitable[None]]
Settled = Callable[[str], Awaitable[None]]


class ProcessService:
    """Saves go to the store and out on the bus; the lists are read models kept from it.

    `settled` (in one process: the catalog projector's) makes a list asked for
    right after a save show it; apart, the lists are as fresh as the projector role.
    """

    def __init__(
        self,
        store: EventStore,
        catalog: DefinitionCatalog,
        clock: Clock,
        lists: CatalogStore,
        publish: Publish,
        settled: Settled | None = None,
        hooks: HookIndex | None = None,
        schedules: ScheduleIndex | None = None,
    ) -> None:
        self._hooks = hooks
        self._schedules = schedules
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._lists = lists
        self._publish = publish
        self._settled = settled

    async def save(
        self,
        tenant: str,
        actor: str,
        raw: dict[str, Any],
        *,
        process_id: str | None = None,
        expected_version: int = 0,
    ) -> dict[str, Any]:
        saved, recorded = await blocking(
            self._save, tenant, actor, raw, process_id, expected_version
        )
        await self._publish(tenant, recorded)
        return saved

    def _save(self, *args: Any) -> tuple[dict[str, Any], list[RecordedEvent]]:
        # A new process in a busy project can race another save for the project's
        # stream: decide again on the fresh state (a stale expected_version still loses).
        for _ in range(4):
            try:
                return self._save_once(*args)
            except ConcurrencyError:
                continue
        raise Conflict("the process or its project kept changing while saving; retry")

    def _save_once(
        self,
        tenant: str,
        actor: str,
        raw: dict[str, Any],
        process_id: str | None,
        expected_version: int,
    ) -> tuple[dict[str, Any], list[RecordedEvent]]:
        try:
            definition = parse_definition(raw)
            graph = compile_definition(definition)
        except DefinitionInvalid as exc:
            problems = [msgspec.to_builtins(p) for p in exc.problems]
            raise Invalid(exc.detail, key=exc.key, problems=problems) from None
        self._check_agents(tenant, graph)
        self._check_children(tenant, graph, process_id)
        check_signal_schemas(graph)
        if process_id is None:
            process = Process(new_id())
        else:
            process = self._load(tenant, process_id)
        at = iso(self._clock.now())
        project = str(project_id(tenant, definition.project))
        app = str(app_id(tenant, definition.project, definition.app))
        raw = msgspec.to_builtins(definition)
        before = process.seq
        try:
            saved = process.save(
                definition,
                raw,
                expected_version=expected_version,
                project=project,
                app=app,
                at=at,
                actor=actor,
            )
        except InvalidCommand as exc:
            raise Conflict(exc.detail, version=process.version) from None
        issued = process.issue_hooks(definition.triggers, _hook_token, at, actor)
        project_stream = UUID(project)
        filed = self._project(tenant, project)
        filing = filed.file(
            definition.project, app, definition.app, process.id, definition.name, at, actor
        )
        appends = [Append(UUID(process.id), before, [saved, *issued])]
        if filing:
            appends.append(Append(project_stream, filed.seq - len(filing), filing))
        if filed.seq == len(filing):
            # The project is new: copied into the tenant's stream of projects, which the
            # lists were once built from; kept so a history stays whole and exports match.
            catalog = _catalog_stream(tenant)
            listed = len(self._store.read(tenant, catalog))
            appends.append(Append(catalog, listed, [filing[0]]))
        positions = iter(self._store.append(tenant, appends))
        self._catalog.forget(tenant, process.id)
        self._index_hooks(tenant, process.id, issued)
        self._index_schedules(tenant, process)
        recorded = [
            RecordedEvent(a.stream_id, a.after + i + 1, event, next(positions, 0))
            for a in appends
            for i, event in enumerate(a.events)
        ]
        return {
            "process_id": process.id,
            "version": saved.version,
            "project_id": project,
            "app_id": app,
            "threads": {t.key: _child_id(process.id, "thread", t.key) for t in definition.threads},
            "elements": {key: _child_id(process.id, "element", key) for key in graph.nodes},
            "triggers": _triggers_out(process, self._clock.now()),
        }, recorded

    async def get(self, tenant: str, process_id: str, version: int | None) -> dict[str, Any]:
        process = await blocking(self._load, tenant, process_id)
        if version is not None and version not in process.versions:
            raise NotFound(f"process {process_id} has no version {version}")
        document = _process_document(process, version or process.version)
        document["triggers"] = _triggers_out(process, self._clock.now(), version)
        return document

    def schedule_ticks(
        self, cron: str | None, every_s: float | None, timezone: str, count: int
    ) -> list[str]:
        """The next `count` ticks of a schedule trigger from now, checked as a save would
        check it (Invalid naming the rule it breaks)."""
        trigger = ScheduleTrigger(key="preview", cron=cron, every_s=every_s, timezone=timezone)
        problems = check_triggers([trigger])
        if problems:
            raise Invalid(problems[0].detail.removeprefix("trigger 'preview': "))
        return [iso(t) for t in next_ticks(trigger, self._clock.now(), count)]

    async def archive(self, tenant: str, actor: str, process_id: str) -> None:
        """Archive the process: its triggers stop, it starts nothing new; reads go on.

        Archiving an archived process changes nothing (DELETE is idempotent).
        """
        recorded = await blocking(self._archive, tenant, actor, process_id)
        if recorded:
            await self._publish(tenant, recorded)

    def _archive(self, tenant: str, actor: str, process_id: str) -> list[RecordedEvent]:
        process = self._load(tenant, process_id)
        if process.archived is not None:
            return []
        before = process.seq
        event = process.archive(iso(self._clock.now()), actor)
        try:
            (position,) = self._store.append(tenant, [Append(UUID(process.id), before, [event])])
        except ConcurrencyError:
            raise Conflict("the process changed while archiving; retry") from None
        self._catalog.forget(tenant, process.id)
        self._index_schedules(tenant, process)
        return [RecordedEvent(UUID(process.id), before + 1, event, position)]

    async def hook(self, token: str) -> tuple[Hook, Process] | None:
        """The tenant's process a webhook token starts, as it stands now; None if none."""
        if self._hooks is None or not token or len(token) > 200:
            return None
        hook = await blocking(self._hooks.find, token)
        if hook is None:
            return None
        try:
            process = await blocking(self._catalog.load, hook.tenant, hook.process_id)
        except UnknownProcess:
            return None
        return hook, process

    def _index_schedules(self, tenant: str, process: Process) -> None:
        """The process's live schedules, for the engines (none once archived)."""
        if self._schedules is None:
            return
        rows = [
            ScheduleRow(tenant, process.id, key, live.trigger, live.since_version, since, None, 0)
            for key, live in live_schedules(process).items()
            for since in [parse_iso(live.since)]
        ]
        self._schedules.put(tenant, process.id, rows)

    def _index_hooks(self, tenant: str, process_id: str, issued: list[HookIssued]) -> None:
        if self._hooks is not None and issued:
            self._hooks.add([Hook(e.token, tenant, process_id, e.key) for e in issued])

    async def list(self, tenant: str) -> list[ProcessSummary]:
        if self._settled is not None:
            await self._settled(tenant)
        return await blocking(self._lists.processes, tenant)

    async def projects(self, tenant: str) -> list[ProjectOut]:
        if self._settled is not None:
            await self._settled(tenant)
        return project_tree(*await blocking(self._lists.projects, tenant))

    def _check_agents(self, tenant: str, graph: Graph) -> None:
        """Every agent element names one of this tenant's agents (another's do not exist here)."""
        known: dict[str, bool] = {}
        problems = []
        for key, node in graph.nodes.items():
            if node.kind.name != "agent":
                continue
            agent_id = node.params.agent_id
            if agent_id not in known:
                known[agent_id] = bool(saved_versions(self._store, tenant, agent_id))
            if not known[agent_id]:
                problems.append(Problem(f"element {key!r}: agent {agent_id} does not exist", key))
        if problems:
            detail = problems[0].detail
            raise Invalid(detail, key=problems[0].key, problems=msgspec.to_builtins(problems))

    def _check_children(self, tenant: str, graph: Graph, saving: str | None) -> None:
        """Every subprocess and foreach names a process of this tenant (itself included:
        the nesting limit stops a recursion), at a version it has if one is pinned."""
        problems = []
        for key, node in graph.nodes.items():
            if not node.kind.spawns:
                continue
            wanted, version = node.params.process_id, node.params.version
            problem = None
            if wanted == saving:
                latest = None if saving is None else self._load(tenant, saving).version
                if version is not None and (latest is None or version > latest + 1):
                    problem = f"process {wanted} will not have a version {version}"
            else:
                try:
                    process = self._catalog.load(tenant, wanted)
                except UnknownProcess:
                    problem = f"process {wanted} does not exist"
                else:
                    if version is not None and version > process.version:
                        problem = f"process {wanted} has no version {version}"
            if problem is not None:
                problems.append(Problem(f"element {key!r}: {problem}", key))
        if problems:
            detail = problems[0].detail
            raise Invalid(detail, key=problems[0].key, problems=msgspec.to_builtins(problems))

    def _load(self, tenant: str, process_id: str) -> Process:
        try:
            return self._catalog.load(tenant, process_id)
        except UnknownProcess:
            raise NotFound(f"process {process_id} not found") from None

    def _project(self, tenant: str, project: str) -> Project:
        events = self._store.read(tenant, UUID(project))
        return Project.rebuild(project, [r.event for r in events])


def _hook_token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits: the URL is the credential


def _triggers_out(process: Process, now: float, version: int | None = None) -> list[dict[str, Any]]:
    """The version's triggers as a caller needs them: a webhook's url, a schedule's next_at."""
    saved = process.versions[version or process.version]
    out = []
    for raw in saved.definition.get("triggers") or []:
        trigger = dict(raw)
        if trigger.get("type") == "webhook" and trigger["key"] in process.hooks:
            trigger["url"] = f"/hooks/{process.hooks[trigger['key']]}"
        elif trigger.get("type") == "schedule" and process.archived is None:
            schedule = msgspec.convert(raw, ScheduleTrigger)
            trigger["next_at"] = iso(next_tick(schedule, now))
        out.append(trigger)
    return out


def _catalog_stream(tenant: str) -> UUID:
    """The stream listing a tenant's projects (their ids derive from their names)."""
    return uuid5(NAMESPACE_URL, f"loom:{tenant}:catalog")


def _child_id(process_id: str, kind: str, key: str) -> str:
    return str(uuid5(NAMESPACE_URL, f"loom:{process_id}:{kind}:{key}"))


def _process_document(process: Process, version: int) -> dict[str, Any]:
    saved: ProcessSaved = process.versions[version]
    return {
        "process_id": process.id,
        "version": version,
        "latest_version": process.version,
        "versions": sorted(process.versions),
        "project_id": saved.project_id,
        "app_id": saved.app_id,
        **saved.definition,
        **process.audit(),
        "version_created_at": saved.at,
        "version_created_by": saved.actor,
    }
