"""The engine: runs executions on one event loop, performs their effects, fires their timers.

Every change goes the same way: take the execution's lock, decide events on the
aggregate, append them to the store in one transaction (a whole run of pure
elements at once), publish them, then schedule whatever effects and timers the
new state holds. Effects and timers are derived from state, so resuming after a
restart is just loading the running executions and scheduling them again.

Child executions (subprocess, foreach) are started in the same transaction as the
parent's decision to start them, so a child exists exactly when its parent has
recorded it; a child that ends tells its parent, and a parent that is loaded again
asks its children how they stand, so a crash between the two loses nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from uuid import UUID

import structlog

from domain.children import ChildStart
from domain.clock import iso, parse_iso
from domain.errors import InvalidCommand
from domain.events import Event, ExecutionStarted, ParentRef
from domain.execution import Execution
from domain.limits import ValueTooLarge
from domain.ports import (
    Append,
    Clock,
    ConcurrencyError,
    EventBus,
    EventStore,
    RecordedEvent,
    StoreUnavailable,
)
from services.roles.engine.calls import CallsInFlight
from services.roles.engine.committer import GroupCommitter
from services.roles.engine.effects import EffectFailed, Effects
from services.roles.engine.timers import TimerQueue
from services.roles.engine.turns import TenantTurns
from services.usecases.catalog import DefinitionCatalog
from services.usecases.ports import UnknownExecution

log = structlog.get_logger("loom.engine")

Decision = Callable[[Execution], list[Event]]
# Children that end the moment they start (a pure child process) are told to their
# parent in the same commit, this many per commit; the rest are told after it.
CHILD_ENDS_PER_COMMIT = 512
Child = tuple[Execution, list[Event]]


class Engine:
    def __init__(
        self,
        store: EventStore,
        catalog: DefinitionCatalog,
        bus: EventBus,
        effects: Effects,
        clock: Clock,
        *,
        actor: str = "loom-engine",
        cache_size: int = 2000,
        run_effects: bool = True,
        run_timers: bool = True,
    ) -> None:
        # run_effects/run_timers off: this engine records commands only (the api role of
        # the distributed mode); timers off: a work queue redelivers at wake-up instead.
        self._run_effects = run_effects
        self._run_timers = run_timers
        self._store = store
        self._committer = GroupCommitter(store)
        self._catalog = catalog
        self._bus = bus
        self._effects = effects
        self._clock = clock
        self.actor = actor
        self._cache: OrderedDict[tuple[str, str], Execution] = OrderedDict()
        self._cache_size = cache_size
        # Weak: a lock lives while someone holds or awaits it, so executions this engine
        # only started (and that finish elsewhere) leave nothing behind.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._calls = CallsInFlight()
        self._timers = TimerQueue(clock)
        self._timer_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._turns = TenantTurns()
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_taken: tuple[str, str] | None = None

    def now(self) -> str:
        return iso(self._clock.now())

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        if self._timer_task is None:
            self._timer_task = asyncio.create_task(
                self._timers.run(self._fire, self._spawn), name="loom-timers"
            )
        if self._turn_task is None:
            self._turn_task = asyncio.create_task(self._take_turns(), name="loom-turns")

    async def close(self) -> None:
        tasks = [*self._calls.tasks(), *self._background]
        if self._timer_task is not None:
            tasks.append(self._timer_task)
            self._timer_task = None
        if self._turn_task is not None:
            tasks.append(self._turn_task)
            self._turn_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def resume(self, executions: Iterable[tuple[str, str]]) -> int:
        """Schedule again the effects and timers of executions left running (after a restart)."""
        count = 0
        for tenant, execution_id in executions:
            execution = await self._get(tenant, execution_id)
            if execution is None or execution.finished:
                continue
            # An effect that was in flight when the engine stopped runs again (at least once).
            execution = await self._command(
                tenant, execution_id, lambda ex: ex.advance(self.now(), self.actor)
            )
            self._schedule(tenant, execution)
            await self._settle_family(tenant, execution)
            count += 1
        log.info("executions resumed", count=count)
        return count

    # --- commands ----------------------------------------------------------------------

    async def start(self, tenant: str, execution_id: str, started: ExecutionStarted) -> Execution:
        """Record the start and the first run of the stack in one transaction.

        Raises ConcurrencyError if the execution id already exists (an idempotent retry).
        """
        graph = await self._catalog.graph(tenant, started.process_id, started.version)
        key = (tenant, execution_id)
        async with self._lock(key):
            execution, events = Execution.start(execution_id, graph, started)
            children = await self._start_children(tenant, execution, events)
            await self._commit(tenant, execution, 0, events, children)
            return execution

    async def cancel(self, tenant: str, execution_id: str, actor: str) -> Execution:
        # Committing the end stops the execution's effects and timers (see _commit).
        return await self._command(
            tenant, execution_id, lambda ex: ex.cancel(self.now(), actor), retry_stale=False
        )

    async def signal(
        self,
        tenant: str,
        execution_id: str,
        name: str,
        data: Any,
        actor: str,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Execution:
        """Record a signal and what it decides (the element that takes it, what follows)
        in one commit; raises InvalidCommand when the execution has ended."""

        def decide(execution: Execution) -> list[Event]:
            now = self.now()
            return execution.signal(name, data, now, actor, idempotency_key, request_hash)

        return await self._command(tenant, execution_id, decide)

    async def load(self, tenant: str, execution_id: str) -> Execution | None:
        return await self._get(tenant, execution_id)

    async def _command(
        self, tenant: str, execution_id: str, decide: Decision, *, retry_stale: bool = True
    ) -> Execution:
        key = (tenant, execution_id)
        async with self._lock(key):
            for _ in range(5):
                execution = await self._get(tenant, execution_id)
                if execution is None:
                    raise UnknownExecution(execution_id)
                before = execution.seq
                try:
                    events = decide(execution)
                    children = await self._start_children(tenant, execution, events)
                except Exception:
                    self._cache.pop(key, None)
                    raise
                if not events:
                    return execution
                try:
                    await self._commit(tenant, execution, before, events, children)
                except ConcurrencyError:
                    # Another engine recorded a step first: reload its history and decide again.
                    self._cache.pop(key, None)
                    if not retry_stale:
                        raise
                    continue
                return execution
            raise ConcurrencyError(f"execution {execution_id} kept moving under us")

    async def _commit(
        self,
        tenant: str,
        execution: Execution,
        before: int,
        events: list[Event],
        children: list[Child] | None = None,
    ) -> None:
        key = (tenant, execution.id)
        writes = [(execution, before, events), *((c, 0, e) for c, e in children or ())]
        appends = [Append(UUID(ex.id), seq, evs) for ex, seq, evs in writes]
        try:
            positions = await self._committer.append_all(tenant, appends)
        except BaseException:
            self._cache.pop(key, None)
            raise
        recorded: list[RecordedEvent] = []
        for ex, seq, evs in writes:
            stream, offset = UUID(ex.id), len(recorded)
            recorded += [
                RecordedEvent(stream, seq + i + 1, event, positions[offset + i] if positions else 0)
                for i, event in enumerate(evs)
            ]
        for ex, _, _ in writes:
            if ex.finished:
                self._cache.pop((tenant, ex.id), None)
                self._locks.pop((tenant, ex.id), None)
                self._stop(tenant, ex.id)
            else:
                self._remember((tenant, ex.id), ex)
        await self._bus.publish(tenant, recorded)
        for ex, _, evs in writes:
            self._schedule(tenant, ex)
            abandoned = ex.abandoned(evs)
            if abandoned:
                self._spawn(self._cancel_children(tenant, abandoned))
        family = {ex.id: ex for ex, _, _ in writes}
        for child, _ in children or ():
            assert child.parent is not None
            parent = family[child.parent.execution_id]
            if child.finished and not self._told(parent, child):
                self._spawn(self._tell_parent(tenant, child))
        if execution.finished and execution.parent is not None:
            # The parent's lock is not ours to wait for here (it may be held by the
            # command that started this child): tell it from a task of its own.
            self._spawn(self._tell_parent(tenant, execution))

    # --- children ------------------------------------------------------------------------

    async def _start_children(
        self, tenant: str, parent: Execution, events: list[Event]
    ) -> list[Child]:
        """Start the children the decision launched, and theirs (extending `events` with the
        ends of those that ended at once); a child whose process cannot start fails its
        element."""
        children: list[Child] = []
        told = 0
        failed: set[tuple[str, int]] = set()
        while launches := parent.take_launches():
            now = self.now()
            for spec in launches:
                if (spec.element, spec.attempt) in failed:
                    continue
                try:
                    child = await self._child(tenant, spec, parent.id, now)
                except (LookupError, InvalidCommand, ValueTooLarge) as exc:
                    failed.add((spec.element, spec.attempt))
                    children = _without(children, parent.id, spec)
                    error = f"could not start a child of process {spec.process_id}: {exc}"
                    events += parent.fail(spec.element, spec.attempt, error, now, self.actor)
                    continue
                # A child that starts children of its own starts them in the same commit.
                grandchildren = await self._start_children(tenant, *child)
                children += [child, *grandchildren]
                execution = child[0]
                if execution.finished and told < CHILD_ENDS_PER_COMMIT:
                    told += 1
                    status, output, error = _ending(execution)
                    events += parent.child_ended(
                        spec.element,
                        spec.attempt,
                        spec.index,
                        status,
                        output,
                        error,
                        now,
                        self.actor,
                    )
        return children

    async def _child(self, tenant: str, spec: ChildStart, parent_id: str, now: str) -> Child:
        version = spec.version
        if version is None:
            process = await self._catalog.latest(tenant, spec.process_id)
            if process.archived is not None:
                raise InvalidCommand(f"process {spec.process_id} is archived")
            version = process.version
        graph = await self._catalog.graph(tenant, spec.process_id, version)
        started = ExecutionStarted(
            at=now,
            actor=self.actor,
            process_id=spec.process_id,
            version=version,
            input=spec.input,
            trigger={"type": "parent"},
            parent=ParentRef(
                execution_id=parent_id,
                element=spec.element,
                attempt=spec.attempt,
                index=spec.index,
                depth=spec.depth,
            ),
        )
        return Execution.start(spec.execution_id, graph, started)

    def _told(self, parent: Execution, child: Execution) -> bool:
        ref = child.parent
        if ref is None:
            return True
        run = parent.nodes.get(ref.element)
        return (
            run is None
            or run.children is None
            or run.children.attempt != ref.attempt
            or ref.index in run.children.ended
        )

    async def _tell_parent(self, tenant: str, child: Execution) -> None:
        ref = child.parent
        assert ref is not None
        status, output, error = _ending(child)

        def decide(parent: Execution) -> list[Event]:
            return parent.child_ended(
                ref.element, ref.attempt, ref.index, status, output, error, self.now(), self.actor
            )

        try:
            await self._command(tenant, ref.execution_id, decide)
        except (UnknownExecution, InvalidCommand):
            pass
        except Exception:
            # The parent asks again when it is loaded next (_settle_family).
            log.exception("a child's end could not be told", execution_id=child.id)

    async def _cancel_children(self, tenant: str, ids: list[str]) -> None:
        for child_id in ids:
            try:
                await self.cancel(tenant, child_id, self.actor)
            except (UnknownExecution, InvalidCommand, ConcurrencyError):
                pass  # ended already, or never started
            except Exception:
                log.exception("a child could not be cancelled", execution_id=child_id)

    async def _settle_family(self, tenant: str, execution: Execution) -> None:
        """After a restart: tell this execution what its children did meanwhile, and end
        it if its parent ended (either word may have been lost in a crash)."""
        for _, _, _, child_id in execution.awaiting():
            child = await self._get(tenant, child_id)
            if child is not None and child.finished:
                await self._tell_parent(tenant, child)
        ref = execution.parent
        if ref is not None and not execution.finished:
            parent = await self._get(tenant, ref.execution_id)
            if parent is not None and parent.finished:
                await self._cancel_children(tenant, [execution.id])

    # --- state -------------------------------------------------------------------------

    async def _get(self, tenant: str, execution_id: str) -> Execution | None:
        key = (tenant, execution_id)
        execution = self._cache.get(key)
        if execution is not None:
            self._cache.move_to_end(key)
            return execution
        try:
            stream = UUID(execution_id)
        except ValueError:
            return None
        history = await asyncio.to_thread(self._store.read, tenant, stream)
        if not history or not isinstance(history[0].event, ExecutionStarted):
            return None
        started = history[0].event
        graph = await self._catalog.graph(tenant, started.process_id, started.version)
        execution = Execution.rebuild(execution_id, graph, [r.event for r in history])
        if not execution.finished:
            self._remember(key, execution)
        return execution

    def _remember(self, key: tuple[str, str], execution: Execution) -> None:
        self._cache[key] = execution
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    # --- for a worker holding executions handed out by a work queue ---------------------

    def forget(self, tenant: str, execution_id: str) -> None:
        """Drop the cached execution: another process may have moved it on."""
        self._cache.pop((tenant, execution_id), None)

    async def drive(self, tenant: str, execution_id: str) -> Execution | None:
        """Reload an execution, run what is runnable and start its effects (None: unknown).

        An effect that was in flight when its engine died runs again (at least once).
        """
        self.forget(tenant, execution_id)
        execution = await self._get(tenant, execution_id)
        if execution is None:
            return execution
        if execution.finished:
            if execution.parent is not None:
                await self._tell_parent(tenant, execution)  # told twice decides nothing
            return execution
        execution = await self._command(
            tenant, execution_id, lambda ex: ex.advance(self.now(), self.actor)
        )
        self._schedule(tenant, execution)
        await self._settle_family(tenant, execution)
        return execution

    async def reconcile(self, tenant: str, execution_id: str) -> Execution | None:
        """The execution as the store has it now, reloaded if another process recorded
        something since (the api's cancel, a timeout); ended there, its effects and
        timers here stop, since their answers could no longer be recorded."""
        key = (tenant, execution_id)
        async with self._lock(key):
            cached = self._cache.get(key)
            if cached is not None:
                stream, seq = UUID(execution_id), cached.seq
                try:
                    newer = await asyncio.to_thread(
                        self._store.read, tenant, stream, after=seq, upto=seq + 1
                    )
                except StoreUnavailable as exc:
                    # Only a check: the calls in flight go on; the next one looks again.
                    log.warning("store unavailable", error=str(exc))
                    return cached
                if not newer:
                    return cached
                self._cache.pop(key, None)
            execution = await self._get(tenant, execution_id)
        if execution is None or execution.finished:
            self._stop(tenant, execution_id)
            self._locks.pop(key, None)
        return execution

    def running(self, tenant: str, execution_id: str) -> bool:
        """Whether an effect of the execution is being performed or recorded here."""
        if (tenant, execution_id) in self._turns or self._turn_taken == (tenant, execution_id):
            return True
        return self._calls.of(tenant, execution_id)

    async def fire_due(self, tenant: str, execution_id: str) -> None:
        """Fire the execution's timers whose time has come."""
        execution = await self._get(tenant, execution_id)
        if execution is None:
            return
        now = self._clock.now()
        for element, wake_at in execution.timers():
            if parse_iso(wake_at) <= now:
                await self._fire(tenant, execution_id, element, wake_at)

    # --- effects and timers --------------------------------------------------------------

    def wake_timers(self) -> None:
        """Look at the timers again now: for a clock that jumps (tests, time travel)."""
        self._timers.wake()

    def _stop(self, tenant: str, execution_id: str) -> None:
        """The execution ended: stop its effects in flight and forget its timers."""
        self._calls.stop(tenant, execution_id)
        self._timers.forget(tenant, execution_id)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _schedule(self, tenant: str, execution: Execution) -> None:
        if execution.finished:
            return
        if execution.yielded and self._run_effects:
            # A long run of pure elements paused: go on once the others had their turn.
            self._turns.add(tenant, execution.id)
        for element, attempt, request in execution.in_flight() if self._run_effects else ():
            token = (tenant, execution.id, element, attempt)
            if token not in self._calls:
                node = execution.graph.nodes[element]
                timeout_s = node.kind.timeout_s(node.params)
                slots = execution.nodes[element].secrets
                work = self._effects.perform(tenant, node.kind.name, request, timeout_s, slots)
                self._spawn(self._perform(token, self._calls.start(token, work)))
        for element, wake_at in execution.timers() if self._run_timers else ():
            self._timers.add((tenant, execution.id, element, wake_at))

    async def _perform(self, token: tuple[str, str, str, int], call: asyncio.Task[Any]) -> None:
        tenant, execution_id, element, attempt = token
        try:
            try:
                output = await call
                failure = None
            except EffectFailed as exc:
                output, failure = None, str(exc)

            def decide(ex: Execution) -> list[Event]:
                now = self.now()
                if ex.finished:
                    return ex.discard(element, attempt, output, failure, now, self.actor)
                if failure is not None:
                    return ex.fail(element, attempt, failure, now, self.actor)
                return ex.complete(element, attempt, output, now, self.actor)

            await self._command(tenant, execution_id, decide)
        except InvalidCommand as exc:
            log.info(
                "effect result discarded",
                execution_id=execution_id,
                element=element,
                why=exc.detail,
            )
        except asyncio.CancelledError:
            log.info("effect cancelled", execution_id=execution_id, element=element)
        except Exception:
            log.exception(
                "effect could not be recorded", execution_id=execution_id, element=element
            )
        finally:
            self._calls.done(token)

    async def _take_turns(self) -> None:
        def decide(execution: Execution) -> list[Event]:
            return execution.advance(self.now(), self.actor) if execution.yielded else []

        while True:
            tenant, execution_id = await self._turns.next()
            self._turn_taken = (tenant, execution_id)
            try:
                # Its commit queues it again (at the back) if it paused once more.
                await self._command(tenant, execution_id, decide)
            except Exception:
                log.exception("execution could not go on", execution_id=execution_id)
            finally:
                self._turn_taken = None
            await asyncio.sleep(0)  # the loop polls for requests between any two slices

    async def _fire(self, tenant: str, execution_id: str, element: str, wake_at: str) -> None:
        def decide(execution: Execution) -> list[Event]:
            if dict(execution.timers()).get(element) != wake_at:
                return []  # cancelled, or already fired by another engine
            return execution.fire_timer(element, self.now(), self.actor)

        try:
            await self._command(tenant, execution_id, decide)
        except Exception:
            log.exception("timer could not fire", execution_id=execution_id, element=element)


def _ending(execution: Execution) -> tuple[str, Any, str | None]:
    """What a parent records of an ended child: status, output, error."""
    if execution.status == "completed":
        return "completed", execution.output, None
    if execution.status == "cancelled":
        return "cancelled", None, "the child execution was cancelled"
    return execution.status, None, execution.error


def _without(children: list[Child], parent_id: str, spec: ChildStart) -> list[Child]:
    """`children` less those of the element attempt `spec` launched, and their descendants
    (a child comes before its own children in the list)."""
    dropped: set[str] = set()
    kept: list[Child] = []
    for child in children:
        ref = child[0].parent
        assert ref is not None
        if ref.execution_id in dropped or (
            (ref.execution_id, ref.element, ref.attempt) == (parent_id, spec.element, spec.attempt)
        ):
            dropped.add(child[0].id)
        else:
            kept.append(child)
    return kept
