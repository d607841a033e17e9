"""The orchestrator: an Execution whose state, stack included, is a pure fold of its events.

Commands decide and return new events; only `apply` changes state, so replaying
the same events rebuilds the same execution, and re-running the same commands
with the recorded outside facts (effect results, timer firings, cancels) must
decide the same events again. The walk is the seed's: push each thread's
trigger, pop and run, route the output along the connections of the port it
left by, push what became ready, until the stack is empty. An element with
several incoming connections is ready once every one is resolved (its source
completed, skipped, or left by another port); it runs if any is live, else it
is skipped, which carries dead paths forward.

One module past ~400 lines on purpose: the fold (`apply`, `_on_*`) and the
commands that decide against it are one aggregate, read together to check that
every decided event is one the fold knows. When signals and sub-processes add
commands, the fold moves into a module of its own (the state) and this keeps the
decisions.
"""

from __future__ import annotations

from typing import Any

from domain.children import MAX_DEPTH, Children, ChildStart, child_id
from domain.clock import iso, parse_iso
from domain.definition import ERROR_PORT, Graph, Node
from domain.elements import ElementFailure
from domain.elements.signal import TIMED_OUT
from domain.errors import InvalidCommand
from domain.events import (
    ChildEnded,
    EffectDiscarded,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
    NodeSkipped,
    NodeWaiting,
    ParentRef,
    SignalReceived,
)
from domain.expression_cost import BUDGET_STEPS
from domain.expressions import METER, Scope
from domain.limits import check_size, oversize
from domain.ports import TERMINAL
from domain.secrets import seal

# A run of pure elements pauses after this many elements or this many expression steps
# (~10 ms, see domain/expression_cost.py), so that other executions, of this tenant and
# every other, take their turn; the engine goes on with it next. Counted, not timed,
# so a replay pauses where the run did.
SLICE_ELEMENTS = 256
SLICE_STEPS = BUDGET_STEPS // 4
# The timer of the execution's own `timeout_s`; element keys cannot start with "@".
EXECUTION_TIMEOUT = "@execution"


class NodeRun:
    """Where one element stands in this execution."""

    __slots__ = (
        "attempts",
        "children",
        "error",
        "output",
        "port",
        "request",
        "secrets",
        "state",
        "wake_at",
    )

    def __init__(self) -> None:
        self.state = "pending"
        self.output: Any = None
        self.error: str | None = None
        self.attempts = 0
        self.port: str | None = None
        self.request: Any = None
        self.secrets: list[Any] | None = None  # where the request's secrets go (domain.secrets)
        # a delay's wake-up, the end of a retry wait, or when a signal's wait times out
        self.wake_at: str | None = None
        self.children: Children | None = None  # a subprocess's or foreach's current attempt


class Execution:
    """One run of one process version."""

    def __init__(self, execution_id: str, graph: Graph) -> None:
        self.id = execution_id
        self.graph = graph
        self.seq = 0
        self.status = "pending"
        self.process_id = ""
        self.version = 0
        self.input: Any = None
        self.output: dict[str, Any] = {}
        self.error: str | None = None
        self.reused: dict[str, Any] = {}
        self.timeout_s: float | None = None
        self.deadline: str | None = None
        self.stack: list[str] = []
        self.nodes: dict[str, NodeRun] = {key: NodeRun() for key in graph.nodes}
        self.outputs: dict[str, Any] = {}
        self._resolved: dict[str, int] = dict.fromkeys(graph.nodes, 0)
        self._live: dict[str, list[str]] = {key: [] for key in graph.nodes}
        self._uncaught: tuple[str, str] | None = None
        self._discarded: set[tuple[str, int]] = set()
        # Signals by name in arrival order, how many of each a `signal` element took,
        # and the elements waiting for each name in the order they began to wait.
        self.signals: dict[str, list[SignalReceived]] = {}
        self._taken: dict[str, int] = {}
        self._waiting: dict[str, list[str]] = {}
        self._signal_keys: dict[str, str | None] = {}  # Idempotency-Key → request hash
        self.parent: ParentRef | None = None
        self.depth = 1
        # Children decided by the last command and not yet handed to the engine; never
        # filled by the fold, so a rebuild launches nothing.
        self._launches: list[ChildStart] = []

    # --- the fold -------------------------------------------------------------------

    @classmethod
    def rebuild(cls, execution_id: str, graph: Graph, events: list[Event]) -> Execution:
        execution = cls(execution_id, graph)
        for event in events:
            execution.apply(event)
        return execution

    def apply(self, event: Event) -> None:
        # A dict of handlers by type rather than `match`: the fold is the replay hot path.
        handler = _APPLY.get(type(event))
        if handler is None:
            raise InvalidCommand(f"{type(event).__name__} does not belong to an execution")
        self.seq += 1
        handler(self, event)

    def _on_executing(self, event: NodeExecuting) -> None:
        node = self.nodes[event.element]
        if node.state == "pending":
            self._pop(event.element)
        node.state = "running"
        node.attempts = event.attempt
        node.request = event.input
        node.secrets = event.secrets
        node.wake_at = event.wake_at
        element = self.graph.nodes[event.element]
        if event.input is not None and element.kind.spawns:
            # The deadline is a fold of the attempt's start and the element's params, so
            # a replay sets the same timer.
            timeout_s = element.params.timeout_s
            deadline = None if timeout_s is None else iso(parse_iso(event.at) + timeout_s)
            node.children = Children(event.input, event.attempt, deadline)

    def _on_waiting(self, event: NodeWaiting) -> None:
        key = event.element
        node = self.nodes[key]
        if node.state == "pending":
            self._pop(key)
        node.state = "waiting"
        node.attempts = event.attempt
        node.wake_at = event.timeout_at
        self._waiting.setdefault(self._signal_name(key), []).append(key)

    def _on_child_ended(self, event: ChildEnded) -> None:
        children = self.nodes[event.element].children
        if children is not None and children.attempt == event.attempt:
            children.end(event)

    def _on_signal(self, event: SignalReceived) -> None:
        self.signals.setdefault(event.name, []).append(event)
        if event.idempotency_key is not None:
            self._signal_keys[event.idempotency_key] = event.request_hash

    def _end_wait(self, key: str, took: bool) -> None:
        name = self._signal_name(key)
        self._waiting[name].remove(key)
        if took:
            self._taken[name] = self._taken.get(name, 0) + 1

    def _signal_name(self, key: str) -> str:
        name: str = self.graph.nodes[key].params.name
        return name

    def _on_completed(self, event: NodeCompleted) -> None:
        key = event.element
        node = self.nodes[key]
        if node.state == "waiting":
            self._end_wait(key, took=True)
        node.state = "completed"
        node.output = event.output
        node.port = event.port
        node.wake_at = None
        self.outputs[key] = event.output
        self._route(key, event.port)

    def _on_failed(self, event: NodeFailed) -> None:
        key = event.element
        node = self.nodes[key]
        if node.state == "waiting":
            self._end_wait(key, took=False)
        node.error = event.error
        node.attempts = event.attempt
        node.wake_at = event.retry_at
        if event.retry_at is None:
            node.state = "failed"
            if key in self.graph.catches_errors:
                self._route(key, ERROR_PORT)
            else:
                self._uncaught = (key, event.error)

    def _on_skipped(self, event: NodeSkipped) -> None:
        self._pop(event.element)
        self.nodes[event.element].state = "skipped"
        self._route(event.element, None)

    def _on_started(self, event: ExecutionStarted) -> None:
        self.status = "running"
        self.process_id = event.process_id
        self.version = event.version
        self.input = event.input
        self.reused = dict(event.reused)
        self.timeout_s = event.timeout_s
        self.parent = event.parent
        self.depth = 1 if event.parent is None else event.parent.depth
        if event.timeout_s is not None:
            self.deadline = iso(parse_iso(event.at) + event.timeout_s)
        self.stack = list(reversed(self.graph.triggers))

    def _on_execution_completed(self, event: ExecutionCompleted) -> None:
        self.status = "completed"
        self.output = dict(event.output)

    def _on_execution_failed(self, event: ExecutionFailed) -> None:
        self.status = "failed"
        self.error = event.error

    def _on_cancelled(self, event: ExecutionCancelled) -> None:
        self.status = "cancelled"

    def _on_discarded(self, event: EffectDiscarded) -> None:
        self._discarded.add((event.element, event.attempt))

    def _pop(self, key: str) -> None:
        if self.stack and self.stack[-1] == key:
            self.stack.pop()
        else:
            self.stack.remove(key)

    def _route(self, source: str, port: str | None) -> None:
        """Resolve the source's outgoing edges (live on `port`) and push what became ready."""
        ready: list[str] = []
        for edge_port, target in self.graph.outgoing[source]:
            self._resolved[target] += 1
            if edge_port == port:
                self._live[target].append(source)
            if self._resolved[target] == len(self.graph.incoming[target]):
                ready.append(target)
        # Reversed, so the first connection's target is popped first.
        self.stack.extend(reversed(ready))

    # --- queries ----------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def yielded(self) -> bool:
        """A run of pure elements paused for others, with elements ready to go on with."""
        return bool(self.stack) and not self.finished and self._uncaught is None

    def in_flight(self) -> list[tuple[str, int, Any]]:
        """Effects started and not yet answered: (key, attempt, recorded request)."""
        if self.finished:
            return []  # a cancel or a failure ends every effect still running
        return [
            (key, node.attempts, node.request)
            for key, node in self.nodes.items()
            if node.state == "running"
            and node.wake_at is None
            and self.graph.nodes[key].kind.name != "delay"
            and not self.graph.nodes[key].kind.spawns
        ]

    def awaiting(self) -> list[tuple[str, int, int, str]]:
        """(element, attempt, index, child id) of every child this execution waits for."""
        if self.finished:
            return []
        return [
            (key, children.attempt, index, child_id(self.id, key, children.attempt, index))
            for key, node in self.nodes.items()
            if node.state == "running"
            and node.wake_at is None
            and (children := node.children) is not None
            for index in children.running()
        ]

    def abandoned(self, events: list[Event]) -> list[str]:
        """The children left running by these events: a subprocess's or foreach's own
        when it failed, and all of them when the execution ended. Their ends no longer
        count."""
        ids: list[str] = []
        for event in events:
            if isinstance(event, NodeFailed):
                children = self.nodes[event.element].children
                if children is not None and children.attempt == event.attempt:
                    ids += [
                        child_id(self.id, event.element, event.attempt, index)
                        for index in children.running()
                    ]
        if self.finished and any(
            isinstance(e, ExecutionFailed | ExecutionCancelled) for e in events
        ):
            ids += [
                child_id(self.id, key, node.children.attempt, index)
                for key, node in self.nodes.items()
                if node.children is not None and node.state == "running"
                for index in node.children.running()
            ]
        return list(dict.fromkeys(ids))

    def take_launches(self) -> list[ChildStart]:
        """The children the last commands decided to start, once."""
        launches, self._launches = self._launches, []
        return launches

    def timers(self) -> list[tuple[str, str]]:
        """(key, wake_at) of every delay, retry wait, signal timeout and child executions'
        timeout still pending, and the execution's own timeout (key EXECUTION_TIMEOUT) if
        it has one."""
        if self.finished:
            return []  # a cancel or a failure ends every wait still pending
        timers = [
            (key, node.wake_at)
            for key, node in self.nodes.items()
            if node.state in ("running", "waiting") and node.wake_at is not None
        ]
        timers += [
            (key, children.deadline)
            for key, node in self.nodes.items()
            if node.state == "running"
            and node.wake_at is None
            and (children := node.children) is not None
            and children.deadline is not None
            and children.attempt == node.attempts
        ]
        if self.deadline is not None:
            timers.append((EXECUTION_TIMEOUT, self.deadline))
        return timers

    def waiting(self) -> list[tuple[str, str]]:
        """(element key, signal name) of every `signal` element waiting, in waiting order."""
        if self.finished:
            return []
        return [(key, name) for name, keys in self._waiting.items() for key in keys]

    def untaken(self, name: str) -> list[SignalReceived]:
        """The signals of `name` no element took yet, oldest first."""
        return self.signals.get(name, [])[self._taken.get(name, 0) :]

    def input_of(self, key: str) -> Any:
        sources = self._live[key]
        if self.graph.nodes[key].kind.is_join:
            return {source: self._edge_value(source) for source in sources}
        if not sources:
            return self.input  # a trigger
        return self._edge_value(sources[0])

    def _edge_value(self, source: str) -> Any:
        node = self.nodes[source]
        if node.state == "failed":
            return {"error": node.error, "attempts": node.attempts}
        return node.output

    # --- commands ---------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        execution_id: str,
        graph: Graph,
        started: ExecutionStarted,
    ) -> tuple[Execution, list[Event]]:
        check_size(started.input, "the execution's input")
        execution = cls(execution_id, graph)
        execution.apply(started)
        events: list[Event] = [started]
        events += execution.advance(started.at, started.actor)
        return execution, events

    def advance(self, at: str, actor: str) -> list[Event]:
        """Run the stack until only effects and timers remain; decide the end if it came."""
        out: list[Event] = []
        if self.finished:
            return out
        emit = self._emitter(out)
        graph_nodes = self.graph.nodes
        ran = 0
        metered = METER.steps
        while self.stack and self._uncaught is None:
            if ran >= SLICE_ELEMENTS or METER.steps - metered >= SLICE_STEPS:
                return out  # paused: the engine goes on with it after the others
            ran += 1
            key = self.stack[-1]
            node = graph_nodes[key]
            if self.graph.incoming[key] and not self._live[key]:
                emit(NodeSkipped(at=at, actor=actor, element=key))
                continue
            if key in self.reused:
                recorded = self.reused[key]
                emit(NodeExecuting(at=at, actor=actor, element=key))
                emit(
                    NodeCompleted(
                        at=at,
                        actor=actor,
                        element=key,
                        output=recorded.get("output"),
                        port=recorded.get("port", "out"),
                    )
                )
                continue
            scope = Scope(self.input_of(key), self.input, self.outputs)
            if node.kind.side_effects:
                self._start_effect(node, scope, at, actor, emit)
                continue
            emit(NodeExecuting(at=at, actor=actor, element=key))
            try:
                outcome = node.kind.run(node.prepared, scope)
            except ElementFailure as exc:
                emit(NodeFailed(at=at, actor=actor, element=key, error=str(exc)))
                continue
            too_large = oversize(outcome.output, f"the result of {key}")
            if too_large is not None:
                emit(NodeFailed(at=at, actor=actor, element=key, error=too_large))
                continue
            emit(
                NodeCompleted(
                    at=at, actor=actor, element=key, output=outcome.output, port=outcome.port
                )
            )
        self._decide_end(at, actor, emit)
        return out

    def _start_effect(self, node: Node, scope: Scope, at: str, actor: str, emit: Any) -> None:
        key = node.key
        if node.kind.name == "signal":
            self._wait(node, at, actor, emit)
            return
        if node.kind.spawns and self.depth >= MAX_DEPTH:
            emit(NodeExecuting(at=at, actor=actor, element=key))
            error = (
                f"nesting deeper than {MAX_DEPTH} levels: this execution is at depth "
                f"{self.depth}, so {key} cannot start a child"
            )
            emit(NodeFailed(at=at, actor=actor, element=key, error=error))
            return
        try:
            request = node.kind.effect(node.prepared, scope)
        except ElementFailure as exc:
            emit(NodeExecuting(at=at, actor=actor, element=key))
            emit(NodeFailed(at=at, actor=actor, element=key, error=str(exc)))
            return
        request, slots = seal(request)
        too_large = oversize(request, f"the request of {key}")
        if too_large is not None:
            emit(NodeExecuting(at=at, actor=actor, element=key))
            emit(NodeFailed(at=at, actor=actor, element=key, error=too_large))
            return
        wake_at = None
        if node.kind.name == "delay":
            wake_at = iso(parse_iso(at) + request["seconds"])
        emit(
            NodeExecuting(
                at=at,
                actor=actor,
                element=key,
                input=request,
                wake_at=wake_at,
                secrets=slots or None,
            )
        )
        if node.kind.spawns:
            self._spawn(key, at, actor, emit)

    def _spawn(self, key: str, at: str, actor: str, emit: Any) -> None:
        """Launch the first children of the element's attempt (none: done at once)."""
        children = self.nodes[key].children
        assert children is not None
        if not children.items:
            emit(NodeCompleted(at=at, actor=actor, element=key, output={"results": []}))
            return
        for index in range(children.launched):
            self._launch(key, children, index)

    def _launch(self, key: str, children: Children, index: int) -> None:
        params = self.graph.nodes[key].params
        self._launches.append(
            ChildStart(
                execution_id=child_id(self.id, key, children.attempt, index),
                process_id=params.process_id,
                version=params.version,
                input=children.input_of(index),
                element=key,
                attempt=children.attempt,
                index=index,
                depth=self.depth + 1,
            )
        )

    def _wait(self, node: Node, at: str, actor: str, emit: Any) -> None:
        timeout_s = node.params.timeout_s
        timeout_at = None if timeout_s is None else iso(parse_iso(at) + timeout_s)
        name = node.params.name
        emit(NodeWaiting(at=at, actor=actor, element=node.key, name=name, timeout_at=timeout_at))
        # A signal sent before the element was reached is taken right away.
        self._take(name, at, actor, emit)

    def _take(self, name: str, at: str, actor: str, emit: Any) -> bool:
        """The first element waiting for `name` takes the oldest signal of it not taken."""
        waiting = self._waiting.get(name)
        untaken = self.untaken(name)
        if not waiting or not untaken:
            return False
        key, signal = waiting[0], untaken[0]
        output = {"data": signal.data, "by": signal.actor, "at": signal.at}
        emit(
            NodeCompleted(
                at=at, actor=actor, element=key, output=output, attempt=self.nodes[key].attempts
            )
        )
        return True

    def _decide_end(self, at: str, actor: str, emit: Any) -> None:
        if self._uncaught is not None:
            key, error = self._uncaught
            emit(ExecutionFailed(at=at, actor=actor, error=error, element=key))
            return
        if self.stack or any(n.state in ("running", "waiting") for n in self.nodes.values()):
            return
        output = {
            key: self.nodes[key].output
            for key, node in self.graph.nodes.items()
            if node.kind.name == "end" and self.nodes[key].state == "completed"
        }
        emit(ExecutionCompleted(at=at, actor=actor, output=output))

    def complete(self, key: str, attempt: int, output: Any, at: str, actor: str) -> list[Event]:
        """An effect answered."""
        self._expect_in_flight(key, attempt)
        too_large = oversize(output, f"the result of {key}")
        if too_large is not None:
            # Not retried: the same call would answer as much again.
            return self._fail_final(key, attempt, too_large, at, actor)
        out: list[Event] = []
        self._emitter(out)(
            NodeCompleted(at=at, actor=actor, element=key, output=output, attempt=attempt)
        )
        return out + self.advance(at, actor)

    def fail(self, key: str, attempt: int, error: str, at: str, actor: str) -> list[Event]:
        """An effect failed: wait and retry while the element's policy allows, else fail it."""
        self._expect_in_flight(key, attempt)
        node = self.graph.nodes[key]
        policy = node.kind.retry(node.params)
        retry_at = None
        if attempt < policy.max_attempts:
            retry_at = iso(parse_iso(at) + policy.interval_after(attempt))
        out: list[Event] = []
        self._emitter(out)(
            NodeFailed(
                at=at, actor=actor, element=key, error=error, attempt=attempt, retry_at=retry_at
            )
        )
        return out + self.advance(at, actor)

    def _fail_final(self, key: str, attempt: int, error: str, at: str, actor: str) -> list[Event]:
        out: list[Event] = []
        self._emitter(out)(
            NodeFailed(at=at, actor=actor, element=key, error=error, attempt=attempt)
        )
        return out + self.advance(at, actor)

    def signal(
        self,
        name: str,
        data: Any,
        at: str,
        actor: str,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> list[Event]:
        """A signal arrived: record it, and let the first element waiting for it take it.

        The same Idempotency-Key with the same request decides nothing (already
        recorded); with another request it is refused.
        """
        if idempotency_key is not None and idempotency_key in self._signal_keys:
            if self._signal_keys[idempotency_key] != request_hash:
                raise InvalidCommand("this Idempotency-Key was used with a different signal")
            return []
        if self.finished:
            raise InvalidCommand(f"execution {self.id} is already {self.status}")
        if not any(
            n.kind.name == "signal" and n.params.name == name for n in self.graph.nodes.values()
        ):
            raise InvalidCommand(f"no signal element of this execution waits for {name!r}")
        out: list[Event] = []
        emit = self._emitter(out)
        emit(
            SignalReceived(
                at=at,
                actor=actor,
                name=name,
                data=data,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
            )
        )
        if not self._take(name, at, actor, emit):
            return out  # kept for the element that waits for it later
        return out + self.advance(at, actor)

    def child_ended(
        self,
        key: str,
        attempt: int,
        index: int,
        status: str,
        output: Any,
        error: str | None,
        at: str,
        actor: str,
    ) -> list[Event]:
        """A child ended: record it, start the next item's, or end the element.

        An end that no longer counts (the element failed, was retried, or the
        execution ended) or that was told before decides nothing.
        """
        run = self.nodes.get(key)
        children = None if run is None else run.children
        if (
            self.finished
            or run is None
            or children is None
            or run.state != "running"
            or run.wake_at is not None
            or children.attempt != attempt
            or index >= children.launched
            or index in children.ended
        ):
            return []
        out: list[Event] = []
        emit = self._emitter(out)
        launched = children.launched
        emit(
            ChildEnded(
                at=at,
                actor=actor,
                element=key,
                attempt=attempt,
                index=index,
                execution_id=child_id(self.id, key, attempt, index),
                status=status,
                output=output if status == "completed" else None,
                error=error,
            )
        )
        if status != "completed":
            reason = error or status
            if children.each:
                reason = f"item {index} {status}: {reason}"
            return out + self.fail(key, attempt, reason, at, actor)
        for next_index in range(launched, children.launched):
            self._launch(key, children, next_index)
        if not children.done:
            return out
        return out + self.complete(key, attempt, children.output(), at, actor)

    def fire_timer(self, key: str, at: str, actor: str) -> list[Event]:
        """A delay woke up, a retry wait ended, a signal's wait timed out, or the
        execution's timeout ran out."""
        if key == EXECUTION_TIMEOUT and self.deadline is not None and not self.finished:
            return self._time_out(at, actor)
        run = self.nodes.get(key)
        if not self.finished and run is not None and run.state == "waiting" and run.wake_at:
            out: list[Event] = []
            self._emitter(out)(
                NodeFailed(at=at, actor=actor, element=key, error=TIMED_OUT, attempt=run.attempts)
            )
            return out + self.advance(at, actor)
        if (
            not self.finished
            and run is not None
            and run.state == "running"
            and run.wake_at is None
            and run.children is not None
            and run.children.deadline is not None
            and run.children.attempt == run.attempts
        ):
            # The children ran out of time: fail the attempt (its retry policy applies,
            # and the engine cancels the children still running).
            timeout_s = self.graph.nodes[key].params.timeout_s
            error = f"timed out after {timeout_s:g} s waiting for its child executions"
            return self.fail(key, run.attempts, error, at, actor)
        if self.finished or run is None or run.state != "running" or run.wake_at is None:
            raise InvalidCommand(f"element {key!r} has no timer waiting")
        out = []
        emit = self._emitter(out)
        if self.graph.nodes[key].kind.name == "delay" and run.error is None:
            emit(NodeCompleted(at=at, actor=actor, element=key, output=self.input_of(key)))
        else:
            emit(
                NodeExecuting(
                    at=at,
                    actor=actor,
                    element=key,
                    attempt=run.attempts + 1,
                    input=run.request,
                    secrets=run.secrets,
                )
            )
            if self.graph.nodes[key].kind.spawns:
                self._spawn(key, at, actor, emit)  # a fresh child for the new attempt
        return out + self.advance(at, actor)

    def _time_out(self, at: str, actor: str) -> list[Event]:
        out: list[Event] = []
        error = f"the execution timed out after {self.timeout_s:g} s"
        self._emitter(out)(ExecutionFailed(at=at, actor=actor, error=error))
        return out

    def discard(
        self, key: str, attempt: int, output: Any, error: str | None, at: str, actor: str
    ) -> list[Event]:
        """An effect answered after the execution ended: record the answer, change nothing."""
        run = self.nodes.get(key)
        if (
            not self.finished
            or run is None
            or run.state != "running"
            or run.wake_at is not None
            or run.attempts != attempt
            or (key, attempt) in self._discarded
        ):
            raise InvalidCommand(f"element {key!r} attempt {attempt} has nothing to discard")
        out: list[Event] = []
        self._emitter(out)(
            EffectDiscarded(
                at=at, actor=actor, element=key, attempt=attempt, output=output, error=error
            )
        )
        return out

    def cancel(self, at: str, actor: str, reason: str | None = None) -> list[Event]:
        if self.finished:
            raise InvalidCommand(f"execution {self.id} is already {self.status}")
        out: list[Event] = []
        self._emitter(out)(ExecutionCancelled(at=at, actor=actor, reason=reason))
        return out

    def _expect_in_flight(self, key: str, attempt: int) -> None:
        run = self.nodes.get(key)
        if (
            self.finished
            or run is None
            or run.state != "running"
            or run.wake_at is not None
            or run.attempts != attempt
        ):
            raise InvalidCommand(f"element {key!r} attempt {attempt} is not in flight")

    def _emitter(self, out: list[Event]) -> Any:
        def emit(event: Event) -> None:
            self.apply(event)
            out.append(event)

        return emit


_APPLY: dict[type[Event], Any] = {
    NodeExecuting: Execution._on_executing,
    NodeCompleted: Execution._on_completed,
    NodeFailed: Execution._on_failed,
    NodeSkipped: Execution._on_skipped,
    ExecutionStarted: Execution._on_started,
    ExecutionCompleted: Execution._on_execution_completed,
    ExecutionFailed: Execution._on_execution_failed,
    ExecutionCancelled: Execution._on_cancelled,
    EffectDiscarded: Execution._on_discarded,
    NodeWaiting: Execution._on_waiting,
    SignalReceived: Execution._on_signal,
    ChildEnded: Execution._on_child_ended,
}
