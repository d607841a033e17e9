"""The tenant's secrets: saved encrypted, listed by name, revealed only to the engine.

Each tenant's secrets live in one stream of its partition: the data key's events
(made, re-wrapped) and every change to a secret (saved, deleted), with who and
when. A value is in an event only as AES-GCM ciphertext under the tenant's data
key (infra/secret_keys.py); reading the stream back gives names and audit fields,
and the values only to `reveal`, which the engine calls when it performs an
effect. A tenant has few secrets and changes them rarely, so the stream stays
short; each read asks only for what came after the last one it folded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

from domain.clock import iso
from domain.events import DataKeyMade, DataKeyRewrapped, Event, SecretDeleted, SecretSaved
from domain.ports import Append, Clock, ConcurrencyError, EventStore, UnknownSecret
from domain.secrets import check_name, check_value
from infra.secret_keys import DataKey, MasterKey, SecretsKeyError
from services.usecases.blocking import blocking
from services.usecases.errors import Conflict, Invalid, NotFound

_SAVE_TRIES = 3


# Checked by the use case rather than typed `str`: a value that is not a string is a
# 422 naming the rule, like an oversized one, not a 400 from the decoder.
_Value = Annotated[Any, msgspec.Meta(description="a string of at most 64 KiB")]


class SecretIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of POST /secrets."""

    name: str
    value: _Value


class SecretValueIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of PUT /secrets/{name}."""

    value: _Value


class SecretOut(msgspec.Struct, kw_only=True):
    """A secret as anyone may see it: its name and who changed it when, never its value."""

    name: str
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str


def secrets_stream(tenant: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"loom:{tenant}:secrets")


class _Entry(msgspec.Struct):
    sealed: str
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str


class _Vault:
    """The fold of one tenant's secrets stream, as far as `version`."""

    def __init__(self) -> None:
        self.version = 0
        self.wrapped: str | None = None
        self.master: str | None = None
        self.entries: dict[str, _Entry] = {}

    def apply(self, event: Event) -> None:
        self.version += 1
        if isinstance(event, DataKeyMade | DataKeyRewrapped):
            self.wrapped, self.master = event.wrapped, event.master
        elif isinstance(event, SecretSaved):
            old = self.entries.get(event.name)
            first = (event.at, event.actor) if old is None else (old.created_at, old.created_by)
            self.entries[event.name] = _Entry(event.sealed, *first, event.at, event.actor)
        elif isinstance(event, SecretDeleted):
            self.entries.pop(event.name, None)


class SecretService:
    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        master: Callable[[], MasterKey],
        on_reveal: Callable[[Sequence[str]], None] = lambda _: None,
    ) -> None:
        """`master` gives the master key when first needed (the embedded default makes
        its key file only once a secret is saved or read); `on_reveal` is told every
        value revealed (the composition root masks them in this process's log lines)."""
        self._on_reveal = on_reveal
        self._store = store
        self._clock = clock
        self._master_key = master
        self._vaults: dict[str, _Vault] = {}
        self._keys: dict[str, DataKey] = {}  # unwrapped once per tenant and process
        self._lock = threading.Lock()

    # --- the API's use cases ---------------------------------------------------------

    async def create(self, tenant: str, actor: str, spec: SecretIn) -> SecretOut:
        name, value = _checked(spec.name, spec.value)
        return await blocking(self._save, tenant, actor, name, value, True)

    async def replace(self, tenant: str, actor: str, name: str, spec: SecretValueIn) -> SecretOut:
        name, value = _checked(name, spec.value, missing_is_404=True)
        return await blocking(self._save, tenant, actor, name, value, False)

    async def delete(self, tenant: str, actor: str, name: str) -> None:
        await blocking(self._delete, tenant, actor, name)

    async def list(self, tenant: str) -> list[SecretOut]:
        vault = await blocking(self._vault, tenant)
        return [_out(name, entry) for name, entry in sorted(vault.entries.items())]

    async def get(self, tenant: str, name: str) -> SecretOut:
        vault = await blocking(self._vault, tenant)
        entry = vault.entries.get(name)
        if entry is None:
            raise NotFound(f"secret {name} not found")
        return _out(name, entry)

    # --- the engine's ------------------------------------------------------------------

    async def reveal(self, tenant: str, names: Sequence[str]) -> dict[str, str]:
        """The values of the named secrets as they stand now; UnknownSecret for a missing one."""
        return await blocking(self._reveal, tenant, list(names))

    def _reveal(self, tenant: str, names: list[str]) -> dict[str, str]:
        vault = self._vault(tenant)
        values: dict[str, str] = {}
        for name in names:
            entry = vault.entries.get(name)
            if entry is None:
                raise UnknownSecret(name)
            values[name] = self._data_key(tenant, vault).decrypt(name, entry.sealed)
        self._on_reveal(list(values.values()))
        return values

    # --- operations ---------------------------------------------------------------------

    def check_master_key(self) -> None:
        """Raise SecretsKeyError unless the master key opens the stored data keys.

        Looks at tenants until it finds one with secrets: a deployment started with
        the wrong LOOM_SECRETS_KEY is told so at start, not by a failed call later.
        """
        for tenant in self._store.tenants():
            vault = self._vault(tenant)
            if vault.wrapped is None:
                continue
            if vault.master != self._master().fingerprint:
                raise SecretsKeyError(
                    "this secrets key (LOOM_SECRETS_KEY, or the key file) is not the one "
                    f"the secrets were stored with (tenant {tenant}'s data key is wrapped by "
                    f"key {vault.master}, this one is {self._master().fingerprint})"
                )
            self._master().unwrap(tenant, vault.wrapped)
            return

    def rotate(self, old: MasterKey, actor: str) -> list[str]:
        """Re-wrap every tenant's data key from `old` to this service's master key.

        Values are not re-encrypted. A tenant already on the new key is left as it is,
        so a rotation that stopped half-way is finished by running it again.
        """
        rewrapped = []
        for tenant in self._store.tenants():
            vault = self._vault(tenant)
            if vault.wrapped is None or vault.master == self._master().fingerprint:
                continue
            raw = old.unwrap(tenant, vault.wrapped)
            event = DataKeyRewrapped(
                at=iso(self._clock.now()),
                actor=actor,
                wrapped=self._master().wrap(tenant, raw),
                master=self._master().fingerprint,
            )
            self._store.append(tenant, [Append(secrets_stream(tenant), vault.version, [event])])
            rewrapped.append(tenant)
        return rewrapped

    # --- inside ---------------------------------------------------------------------------

    def _master(self) -> MasterKey:
        return self._master_key()

    def _save(self, tenant: str, actor: str, name: str, value: str, create: bool) -> SecretOut:
        for _ in range(_SAVE_TRIES):
            vault = self._vault(tenant)
            if create and name in vault.entries:
                raise Conflict(f"secret {name} exists already: PUT /api/v1/secrets/{name}")
            if not create and name not in vault.entries:
                raise NotFound(f"secret {name} not found")
            at = iso(self._clock.now())
            events: list[Event] = []
            if vault.wrapped is None:
                key = DataKey.new(tenant)
                wrapped = self._master().wrap(tenant, key.raw)
                events.append(
                    DataKeyMade(
                        at=at, actor=actor, wrapped=wrapped, master=self._master().fingerprint
                    )
                )
            else:
                key = self._data_key(tenant, vault)
            sealed = key.encrypt(name, value)
            events.append(SecretSaved(at=at, actor=actor, name=name, sealed=sealed, created=create))
            if self._append(tenant, vault, events):
                if vault.wrapped is None:
                    self._keys[tenant] = key
                return _out(name, self._vault(tenant).entries[name])
        raise Conflict("the tenant's secrets changed while saving; retry")

    def _delete(self, tenant: str, actor: str, name: str) -> None:
        for _ in range(_SAVE_TRIES):
            vault = self._vault(tenant)
            if name not in vault.entries:
                raise NotFound(f"secret {name} not found")
            event = SecretDeleted(at=iso(self._clock.now()), actor=actor, name=name)
            if self._append(tenant, vault, [event]):
                return
        raise Conflict("the tenant's secrets changed while deleting; retry")

    def _append(self, tenant: str, vault: _Vault, events: list[Event]) -> bool:
        try:
            self._store.append(tenant, [Append(secrets_stream(tenant), vault.version, events)])
        except ConcurrencyError:
            return False  # another process changed them: fold what it wrote, decide again
        return True

    def _vault(self, tenant: str) -> _Vault:
        """The tenant's secrets as stored now: what the cache had, plus what came since."""
        with self._lock:
            vault = self._vaults.get(tenant) or _Vault()
        newer = self._store.read(tenant, secrets_stream(tenant), after=vault.version)
        if not newer:
            return vault
        fresh = _Vault()
        fresh.version, fresh.wrapped, fresh.master = vault.version, vault.wrapped, vault.master
        fresh.entries = dict(vault.entries)
        for recorded in newer:
            fresh.apply(recorded.event)
        with self._lock:
            current = self._vaults.get(tenant)
            if current is None or current.version < fresh.version:
                self._vaults[tenant] = fresh
                if fresh.master != vault.master:
                    self._keys.pop(tenant, None)
        return fresh

    def _data_key(self, tenant: str, vault: _Vault) -> DataKey:
        key = self._keys.get(tenant)
        if key is None:
            assert vault.wrapped is not None
            key = DataKey(tenant, self._master().unwrap(tenant, vault.wrapped))
            self._keys[tenant] = key
        return key


def _checked(name: str, value: Any, *, missing_is_404: bool = False) -> tuple[str, str]:
    try:
        check_name(name)
    except ValueError as exc:
        if missing_is_404:
            raise NotFound(f"secret {name} not found") from None
        raise Invalid(str(exc)) from None
    try:
        return name, check_value(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def _out(name: str, entry: _Entry) -> SecretOut:
    return SecretOut(
        name=name,
        created_at=entry.created_at,
        created_by=entry.created_by,
        modified_at=entry.modified_at,
        modified_by=entry.modified_by,
    )
