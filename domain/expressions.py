"""CEL expressions and `{{ … }}` templates behind one small interface.

The CEL implementation (`common-expression-language`, Rust) evaluates in ~6 µs
where cel-python takes ~365 µs, but it cannot count its work. CEL always
terminates; the sandbox bounds the source's size and nested comprehension macros,
and prices every evaluation before it runs (domain/expression_cost.py): one that
would go over its budget fails with `expression exceeded its budget` without
running. Templates are bounded in the size of what they assemble.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

import cel
import msgspec
from celpy.celparser import CELParseError, CELParser

from domain.errors import ExpressionError
from domain.expression_cost import MAX_VALUE_BYTES, CostModel, OverBudget
from domain.secrets import Sealed, SecretRef, reference

MAX_SOURCE_CHARS = 4096
MAX_MACROS = 3
OVER_BUDGET = "expression exceeded its budget"

_MACRO = re.compile(r"\.\s*(map|filter|all|exists|exists_one)\s*\(")
_NODE_REF = re.compile(r"\bnodes\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(['\"])(.*?)\2\s*\])")
_NODES_ANY = re.compile(r"\bnodes\b")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
# CEL maps come out in an order that differs between processes; everything an
# expression produces is made canonical (keys sorted), so a recorded value and a
# replayed one are the same bytes.
_encoder = msgspec.json.Encoder(order="sorted")


class _Meter(threading.local):
    """Expression steps priced on this thread so far: a run of elements reads the
    difference to know when to pause (per thread, so replays in threads do not mix)."""

    steps = 0.0


METER = _Meter()


class Expression:
    """A compiled CEL expression over `input`, `execution.input` and `nodes.<key>.output`."""

    __slots__ = ("_cost", "_program", "node_refs", "source", "variables")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("expression is empty")
        if len(source) > MAX_SOURCE_CHARS:
            raise ExpressionError(f"expression longer than {MAX_SOURCE_CHARS} characters")
        if len(_MACRO.findall(source)) > MAX_MACROS:
            raise ExpressionError(f"expression uses more than {MAX_MACROS} comprehension macros")
        try:
            self._program = cel.compile(source)
        except Exception as exc:  # the binding raises ValueError with the parser's message
            raise ExpressionError(f"expression does not compile: {_first_line(exc)}") from None
        self._cost = _cost_model(source)
        self.source = source
        self.node_refs = _node_refs(source)
        self.variables = frozenset(self._program.variables())
        if "secrets" in self.variables:
            raise ExpressionError(_SECRETS_WHERE)

    def evaluate(self, scope: Scope) -> Any:
        activation = scope.activation(self.variables, self.node_refs)
        try:
            METER.steps += self._cost.check(activation)
        except OverBudget as exc:
            raise ExpressionError(f"{OVER_BUDGET} ({self.source!r}: {exc})") from None
        try:
            value = self._program.execute(activation)
        except Exception as exc:
            raise ExpressionError(f"{self.source!r} failed: {_first_line(exc)}") from None
        return _plain(value, self.source)


class Template:
    """A string whose `{{ … }}` parts are CEL expressions; a lone `{{ x }}` keeps x's type.

    With `secrets`, a part may be `{{ secrets.NAME }}`: the rendering is then `Sealed`
    (see domain/secrets.py), its value put in only by the engine when it sends it.
    """

    __slots__ = ("_parts", "secrets", "source")

    def __init__(self, source: str, *, secrets: bool = False) -> None:
        self.source = source
        parts: list[str | Expression | SecretRef] = []
        last = 0
        for match in _TEMPLATE.finditer(source):
            if match.start() > last:
                parts.append(source[last : match.start()])
            parts.append(_part(match.group(1), secrets))
            last = match.end()
        if last < len(source):
            parts.append(source[last:])
        self._parts = parts
        self.secrets = frozenset(p.name for p in parts if isinstance(p, SecretRef))

    def render(self, scope: Scope) -> Any:
        if len(self._parts) == 1 and isinstance(self._parts[0], Expression):
            return self._parts[0].evaluate(scope)
        out: list[str | SecretRef] = []
        size = 0
        for part in self._parts:
            if isinstance(part, SecretRef):
                out.append(part)
                continue
            if isinstance(part, str):
                text = part
            else:
                value = part.evaluate(scope)
                text = value if isinstance(value, str) else _encoder.encode(value).decode()
            size += len(text)
            if size > MAX_VALUE_BYTES:
                raise ExpressionError(
                    f"{OVER_BUDGET} (template builds over {MAX_VALUE_BYTES} bytes)"
                )
            out.append(text)
        if self.secrets:
            return Sealed(out)
        return "".join(out)  # type: ignore[arg-type]  # no SecretRef without self.secrets


_SECRETS_WHERE = (
    "secrets may be used only as {{ secrets.NAME }} in the params of http elements "
    "and the prompts of agent elements"
)


def _part(source: str, secrets: bool) -> Expression | SecretRef:
    try:
        name = reference(source)
    except ValueError as exc:
        raise ExpressionError(str(exc)) from None
    if name is None:
        return Expression(source.strip())
    if not secrets:
        raise ExpressionError(_SECRETS_WHERE)
    return SecretRef(name)


class Scope:
    """What an expression can see: this element's input, the execution's, upstream outputs."""

    __slots__ = ("execution_input", "input", "outputs")

    def __init__(self, input: Any, execution_input: Any, outputs: Mapping[str, Any]) -> None:
        self.input = input
        self.execution_input = execution_input
        self.outputs = outputs

    def activation(
        self, variables: frozenset[str], node_refs: frozenset[str] | None
    ) -> dict[str, Any]:
        # Every value handed over is converted to CEL on each evaluation, so only the
        # variables an expression names are, and of `nodes` only the keys it names
        # (all of them when it indexes dynamically): O(what it reads), not O(history).
        activation: dict[str, Any] = {}
        if "input" in variables:
            activation["input"] = self.input
        if "execution" in variables:
            activation["execution"] = {"input": self.execution_input}
        if "nodes" in variables:
            if node_refs is None:
                keys: Any = self.outputs.keys()
            else:
                keys = (k for k in node_refs if k in self.outputs)
            activation["nodes"] = {k: {"output": self.outputs[k]} for k in keys}
        return activation


def compile_value(value: Any, *, secrets: bool = False) -> Any:
    """Compile every `{{ … }}` string inside a JSON-like value into a Template."""
    if isinstance(value, str):
        return Template(value, secrets=secrets) if "{{" in value else value
    if isinstance(value, list):
        return [compile_value(v, secrets=secrets) for v in value]
    if isinstance(value, dict):
        return {k: compile_value(v, secrets=secrets) for k, v in value.items()}
    return value


def render_value(value: Any, scope: Scope) -> Any:
    if isinstance(value, Template):
        return value.render(scope)
    if isinstance(value, list):
        return [render_value(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, scope) for k, v in value.items()}
    return value


def _node_refs(source: str) -> frozenset[str] | None:
    refs = {m.group(1) or m.group(3) for m in _NODE_REF.finditer(source)}
    if len(_NODES_ANY.findall(source)) != len(_NODE_REF.findall(source)):
        return None
    return frozenset(refs)


def _cost_model(source: str) -> CostModel:
    model = _COST_MODELS.get(source)
    if model is None:
        try:
            model = CostModel(_parser().parse(source))
        except CELParseError as exc:
            raise ExpressionError(f"expression does not compile: {_first_line(exc)}") from None
        except OverBudget as exc:
            raise ExpressionError(f"{OVER_BUDGET} whatever its input ({exc})") from None
        except ValueError as exc:  # a form of the grammar the model does not price
            raise ExpressionError(f"expression cannot be priced: {exc}") from None
        if len(_COST_MODELS) >= 4096:
            _COST_MODELS.clear()
        _COST_MODELS[source] = model
    return model


# Parsing costs 0.1 to 1 ms: a source seen once is priced once per process.
_COST_MODELS: dict[str, CostModel] = {}
_PARSER: list[CELParser] = []


def _parser() -> CELParser:
    if not _PARSER:
        _PARSER.append(CELParser())  # builds the grammar once (~0.1 s), on first use
    return _PARSER[0]


def _plain(value: Any, source: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        encoded = _encoder.encode(msgspec.to_builtins(value, str_keys=True))
    except (TypeError, msgspec.EncodeError) as exc:
        raise ExpressionError(f"{source!r} produced a value that is not JSON: {exc}") from None
    if len(encoded) > MAX_VALUE_BYTES:
        raise ExpressionError(f"{OVER_BUDGET} ({source!r} built over {MAX_VALUE_BYTES} bytes)")
    return msgspec.json.decode(encoded)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
