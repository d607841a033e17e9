"""The tenant's agents (for the `agent` element): versioned, audited, listed in a catalog stream."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

from domain.clock import iso
from domain.events import AgentListed, AgentSaved
from domain.ports import Append, Clock, ConcurrencyError, EventStore
from domain.secrets import SECRET_NAME
from services.usecases.blocking import blocking
from services.usecases.errors import Conflict, Invalid, NotFound
from services.usecases.ids import new_id


class AgentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An agent as a save asks for it (the body of POST and PUT /agents); a save with
    `expected_version` is refused unless the agent is at that version."""

    name: str
    system_prompt: str = ""
    model: str = "gpt-4o-mini"
    temperature: float | None = None
    max_tokens: int | None = None
    base_url: str | None = None
    api_key_secret: str | None = None
    expected_version: int | None = None

    def check(self) -> None:
        if not self.name.strip() or len(self.name) > 200:
            raise Invalid("`name` must be 1 to 200 characters")
        if not self.model.strip():
            raise Invalid("`model` must not be empty")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise Invalid("`temperature` must be between 0 and 2")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= 1_000_000:
            raise Invalid("`max_tokens` must be between 1 and 1000000")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise Invalid("`base_url` must be an absolute http:// or https:// URL")
            if parts.password is not None or parts.username is not None:
                raise Invalid(
                    "`base_url` must not hold credentials: name a secret in `api_key_secret`"
                )
        if self.api_key_secret is not None and SECRET_NAME.fullmatch(self.api_key_secret) is None:
            raise Invalid(f"`api_key_secret` must name a secret ({SECRET_NAME.pattern})")


class AgentOut(msgspec.Struct, kw_only=True):
    """An agent as the API answers it: its latest (or asked-for) version and who made it."""

    agent_id: str
    version: int
    name: str
    system_prompt: str
    model: str
    temperature: float | None
    max_tokens: int | None
    base_url: str | None
    api_key_secret: str | None  # the secret's name; its value is never shown
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str


def _catalog(tenant: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"loom:{tenant}:agents")


class AgentService:
    def __init__(self, store: EventStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def save(
        self, tenant: str, actor: str, spec: AgentSpec, agent_id: str | None = None
    ) -> AgentOut:
        spec.check()
        return await blocking(self._save, tenant, actor, spec, agent_id)

    def _save(self, tenant: str, actor: str, spec: AgentSpec, agent_id: str | None) -> AgentOut:
        at = iso(self._clock.now())
        if agent_id is None:
            agent_id = new_id()
            versions: list[AgentSaved] = []
        else:
            versions = self._versions(tenant, agent_id)
        if spec.expected_version is not None and spec.expected_version != len(versions):
            raise Conflict(f"agent is at version {len(versions)}, not {spec.expected_version}")
        event = AgentSaved(
            at=at,
            actor=actor,
            version=len(versions) + 1,
            name=spec.name,
            system_prompt=spec.system_prompt,
            model=spec.model,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            base_url=spec.base_url,
            api_key_secret=spec.api_key_secret,
        )
        appends = [Append(UUID(agent_id), len(versions), [event])]
        if not versions:
            listed = len(self._store.read(tenant, _catalog(tenant)))
            appends.append(
                Append(
                    _catalog(tenant), listed, [AgentListed(at=at, actor=actor, agent_id=agent_id)]
                )
            )
        try:
            self._store.append(tenant, appends)
        except ConcurrencyError:
            raise Conflict("the agent changed while saving; reload and retry") from None
        return _document(agent_id, [*versions, event])

    async def get(self, tenant: str, agent_id: str, version: int | None = None) -> AgentOut:
        versions = await blocking(self._versions, tenant, agent_id)
        if version is not None:
            if not 1 <= version <= len(versions):
                raise NotFound(f"agent {agent_id} has no version {version}")
            versions = versions[:version]
        return _document(agent_id, versions)

    async def list(self, tenant: str) -> list[AgentOut]:
        return await blocking(self._list, tenant)

    def _list(self, tenant: str) -> list[AgentOut]:
        listed = self._store.read(tenant, _catalog(tenant))
        ids = [r.event.agent_id for r in listed if isinstance(r.event, AgentListed)]
        return [_document(agent_id, self._versions(tenant, agent_id)) for agent_id in ids]

    async def saved(
        self, tenant: str, agent_id: str, version: int | None = None
    ) -> AgentSaved | None:
        """One saved version of the agent (the latest by default), or None if the tenant has none.

        The `agent` element's runner resolves agents here: what it gets back is
        the system prompt, model and version it records with the answer.
        """
        versions = await asyncio.to_thread(saved_versions, self._store, tenant, agent_id)
        if not versions:
            return None
        if version is None:
            return versions[-1]
        return versions[version - 1] if 1 <= version <= len(versions) else None

    def _versions(self, tenant: str, agent_id: str) -> list[AgentSaved]:
        saved = saved_versions(self._store, tenant, agent_id)
        if not saved:
            raise NotFound(f"agent {agent_id} not found")
        return saved


def saved_versions(store: EventStore, tenant: str, agent_id: str) -> list[AgentSaved]:
    """Every saved version of the tenant's agent, oldest first; empty if it has no such agent."""
    try:
        stream = UUID(agent_id)
    except ValueError:
        return []
    return [r.event for r in store.read(tenant, stream) if isinstance(r.event, AgentSaved)]


def _document(agent_id: str, versions: list[AgentSaved]) -> AgentOut:
    first, last = versions[0], versions[-1]
    return AgentOut(
        agent_id=agent_id,
        version=last.version,
        name=last.name,
        system_prompt=last.system_prompt,
        model=last.model,
        temperature=last.temperature,
        max_tokens=last.max_tokens,
        base_url=last.base_url,
        api_key_secret=last.api_key_secret,
        created_at=first.at,
        created_by=first.actor,
        modified_at=last.at,
        modified_by=last.actor,
    )
