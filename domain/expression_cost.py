"""What a CEL expression may cost, priced before it runs on the sizes of what it reads.

The CEL binding we evaluate with cannot count its own work or stop half-way, and it
holds the GIL while it runs: one expression that loops over a list inside a loop over
that list stalls every tenant's requests. So every expression is priced first, the way
Kubernetes prices CEL in admission policies, but on the real sizes instead of declared
maxima: the model walks the expression's syntax tree (parsed once, by cel-python's
grammar) and, for each comprehension, multiplies the cost of its body by the number of
entries of the list or map it iterates. Those sizes are read from the actual input
before evaluation, so the price is an upper bound of the work, reached in microseconds
and the same on every machine: a replay decides exactly as the first run did.

Units: one *step* is about 0.1 µs of the binding's work, as measured on it: one
comprehension iteration ~3 steps; handing a value over to CEL ~3 steps per list entry
and ~18 per string (the binding converts every value it is given, on each
evaluation: 1 MiB of small records takes it ~0.3 s); `map` and `filter` copy their
accumulated list on every iteration (quadratic in the binding), priced as such.
A value's *bytes* are its JSON size, which also bounds a string's length and a
collection's entries.

One module past ~400 lines on purpose: the shapes, the budget and the walker over
the grammar are one cost model whose units must agree; most of it is `_Builder`,
one method per construct of the grammar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from lark import Token, Tree

BUDGET_STEPS = 400_000
# The largest value an evaluation may build, intermediate values included. Results are
# capped lower (an element's result at 1 MiB); this bounds the memory one evaluation
# can take on its way there.
MAX_VALUE_BYTES = 4 << 20
_COPY_BYTES_PER_STEP = 1024
_ITERATION_STEPS = 3
_SCALAR_BYTES = 32
# Reads of at most this many bytes in all, by an expression whose price stays within
# the budget whatever it reads of that size, need no pricing before each evaluation.
SMALL_READ_BYTES = 16 << 10
_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one"})
_ROOTS = frozenset({"input", "execution", "nodes"})
_encode = msgspec.json.Encoder().encode


class OverBudget(Exception):
    """The expression's price is above the budget; nothing was evaluated."""


class Shape:
    """What the model knows of a value: its entries, its bytes, and the largest that an
    entry (`item`: what iterating yields; `member`: what indexing yields) can be.

    A measured shape stands for the largest of some real values and reads their
    entries only when asked; an abstract one is built by the model's rules.
    """

    __slots__ = ("_item", "_member", "_values", "bytes", "count")

    def __init__(
        self,
        count: int,
        size: int,
        item: Shape | None = None,
        member: Shape | None = None,
        values: list[Any] | None = None,
    ) -> None:
        self.count = count
        self.bytes = size
        self._item = item
        self._member = member
        self._values = values

    @classmethod
    def measure(cls, values: list[Any]) -> Shape:
        count, size = 1, 2
        for value in values:
            if isinstance(value, list | dict):
                count = max(count, len(value))
                size = max(size, len(_encode(value)))
            elif isinstance(value, str):
                size = max(size, len(value.encode()) + 2)
            elif isinstance(value, bytes):
                size = max(size, len(value) * 2 + 2)
            else:
                size = max(size, _SCALAR_BYTES)
        return cls(count, size, values=values)

    def item(self) -> Shape:
        if self._item is None:
            self._item = self._children(keys=True)
        return self._item

    def member(self) -> Shape:
        if self._member is None:
            self._member = self._children(keys=False)
        return self._member

    def _children(self, *, keys: bool) -> Shape:
        if self._values is None:
            return SCALAR
        children: list[Any] = []
        for value in self._values:
            if isinstance(value, list):
                children.extend(value)
            elif isinstance(value, dict):
                children.extend(value.keys() if keys else value.values())
        return Shape.measure(children) if children else SCALAR

    def field(self, key: Any) -> Shape:
        """The shape of `value.key` / `value[key]` for a key known before evaluation."""
        if self._values is None:
            return self.member()
        picked = []
        for value in self._values:
            if (isinstance(value, dict) and key in value) or (
                isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value)
            ):
                picked.append(value[key])
        return Shape.measure(picked) if picked else SCALAR


SCALAR = Shape(1, _SCALAR_BYTES)


def _largest(shapes: list[Shape]) -> Shape:
    if not shapes:
        return SCALAR
    if len(shapes) == 1:
        return shapes[0]
    return Shape(
        max(s.count for s in shapes),
        max(s.bytes for s in shapes),
        item=_LazyLargest(shapes, "item"),
        member=_LazyLargest(shapes, "member"),
    )


class _LazyLargest(Shape):
    """The largest of several shapes' entries, worked out only if the model reaches it."""

    __slots__ = ("_of", "_shapes", "_which")

    def __init__(self, shapes: list[Shape], which: str) -> None:
        self._shapes = shapes
        self._which = which
        self._of: Shape | None = None

    def _resolved(self) -> Shape:
        if self._of is None:
            self._of = _largest([getattr(s, self._which)() for s in self._shapes])
        return self._of

    def __getattr__(self, name: str) -> Any:  # count, bytes: only slots not set here
        return getattr(self._resolved(), name)

    def item(self) -> Shape:
        return self._resolved().item()

    def member(self) -> Shape:
        return self._resolved().member()

    def field(self, key: Any) -> Shape:
        return self._resolved().field(key)


def _worst(size: int) -> Shape:
    worst = Shape(size, size)
    worst._item = worst._member = worst
    return worst


def _handover_steps(encoded: bytes) -> float:
    """What converting a value to CEL costs, counted on its JSON: entries and strings
    (quotes, commas and colons inside strings count too, which only overprices)."""
    strings = encoded.count(b'"') / 2
    entries = encoded.count(b",") + encoded.count(b":")
    containers = encoded.count(b"[") + encoded.count(b"{")
    return 1 + 18 * strings + 3 * entries + 8 * containers


# The most a JSON byte can cost to hand over (a list of empty strings: `"",` is 21 steps).
_HANDOVER_STEPS_PER_BYTE = 7


# --- the priced tree ---------------------------------------------------------------------

Env = Mapping[str, Shape]


class _Budget:
    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps = 0.0

    def spend(self, steps: float) -> None:
        self.steps += steps
        if self.steps > BUDGET_STEPS:
            raise OverBudget(f"more than {BUDGET_STEPS:,} steps")

    def built(self, shape: Shape) -> Shape:
        if shape.bytes > MAX_VALUE_BYTES:
            raise OverBudget(f"a value over {MAX_VALUE_BYTES} bytes")
        return shape


Priced = Callable[[Env, _Budget], Shape]


class CostModel:
    """The price of one expression: `check(activation)` raises OverBudget when too dear."""

    __slots__ = ("_price", "cheap_when_small")

    def __init__(self, tree: Tree[Any]) -> None:
        self._price = _Builder().build(tree)
        # Too dear even on the smallest input (literal lists iterated inside each
        # other): refused when the definition is saved. Raises OverBudget.
        self._price({root: SCALAR for root in _ROOTS}, _Budget())
        small = _Budget()
        small.spend(SMALL_READ_BYTES * _HANDOVER_STEPS_PER_BYTE)
        try:
            self._price({root: _worst(SMALL_READ_BYTES) for root in _ROOTS}, small)
            self.cheap_when_small = True
        except OverBudget:
            self.cheap_when_small = False

    def check(self, activation: Mapping[str, Any]) -> float:
        """Price an evaluation on these values: the steps it may take, or OverBudget."""
        if self.cheap_when_small:
            # The hot path: small reads of an expression cheap on any small read.
            total = 0
            for value in activation.values():
                total += len(_encode(value))
            if total <= SMALL_READ_BYTES:
                return float(total * _HANDOVER_STEPS_PER_BYTE)
        budget = _Budget()
        for value in activation.values():
            budget.spend(_handover_steps(_encode(value)))
        env = {name: Shape.measure([value]) for name, value in activation.items()}
        self._price(env, budget)
        return budget.steps


class _Builder:
    """Turns cel-python's parse tree into nested pricing functions."""

    def __init__(self) -> None:
        self._bound: list[str] = []  # comprehension variables in scope

    def build(self, node: Any) -> Priced:
        if isinstance(node, Token):
            raise ValueError(f"unexpected token {node!r}")
        rule = node.data
        kids = node.children
        method = getattr(self, f"_{rule}", None)
        if method is not None:
            return method(kids)  # type: ignore[no-any-return]
        if len(kids) == 1:  # a pass-through level of the grammar (expr, addition, …)
            return self.build(kids[0])
        raise ValueError(f"cannot price {rule}")

    # expr: conditionalor ["?" conditionalor ":" expr]
    def _expr(self, kids: list[Any]) -> Priced:
        if len(kids) == 1:
            return self.build(kids[0])
        cond, yes, no = (self.build(k) for k in kids)

        def price(env: Env, budget: _Budget) -> Shape:
            cond(env, budget)
            return _largest([yes(env, budget), no(env, budget)])

        return price

    def _logical(self, kids: list[Any]) -> Priced:
        if len(kids) == 1:
            return self.build(kids[0])
        parts = [self.build(k) for k in kids]

        def price(env: Env, budget: _Budget) -> Shape:
            for part in parts:
                part(env, budget)
            budget.spend(1)
            return SCALAR

        return price

    _conditionalor = _logical
    _conditionaland = _logical

    def _relation(self, kids: list[Any]) -> Priced:
        if len(kids) == 1:
            return self.build(kids[0])
        op_tree, right_tree = kids
        left = self.build(op_tree.children[0])
        right = self.build(right_tree)
        is_in = op_tree.data == "relation_in"

        def price(env: Env, budget: _Budget) -> Shape:
            a, b = left(env, budget), right(env, budget)
            budget.spend(1 + (a.bytes + b.bytes) / _COPY_BYTES_PER_STEP + (b.count if is_in else 0))
            return SCALAR

        return price

    def _addition(self, kids: list[Any]) -> Priced:
        if len(kids) == 1:
            return self.build(kids[0])
        op_tree, right_tree = kids
        left = self.build(op_tree.children[0])
        right = self.build(right_tree)
        if op_tree.data == "addition_sub":
            return _arithmetic(left, right)

        def price(env: Env, budget: _Budget) -> Shape:
            # `+` concatenates strings and lists: the result holds both sides.
            a, b = left(env, budget), right(env, budget)
            budget.spend(1 + (a.bytes + b.bytes) / _COPY_BYTES_PER_STEP)
            joined = _largest([a, b])
            return budget.built(
                Shape(a.count + b.count, a.bytes + b.bytes, joined.item(), joined.member())
            )

        return price

    def _multiplication(self, kids: list[Any]) -> Priced:
        if len(kids) == 1:
            return self.build(kids[0])
        op_tree, right_tree = kids
        return _arithmetic(self.build(op_tree.children[0]), self.build(right_tree))

    def _unary(self, kids: list[Any]) -> Priced:
        if len(kids) == 1:
            return self.build(kids[0])
        operand = self.build(kids[1])

        def price(env: Env, budget: _Budget) -> Shape:
            operand(env, budget)
            budget.spend(1)
            return SCALAR

        return price

    def _member(self, kids: list[Any]) -> Priced:
        return self.build(kids[0])

    def _primary(self, kids: list[Any]) -> Priced:
        return self.build(kids[0])

    def _paren_expr(self, kids: list[Any]) -> Priced:
        return self.build(kids[0])

    def _literal(self, kids: list[Any]) -> Priced:
        shape = Shape(1, len(str(kids[0])) + 2)

        def price(env: Env, budget: _Budget) -> Shape:
            budget.spend(shape.bytes / _COPY_BYTES_PER_STEP)
            return shape

        return price

    def _ident(self, kids: list[Any]) -> Priced:
        name = str(kids[0])
        return self._path(name, ())

    def _dot_ident(self, kids: list[Any]) -> Priced:
        return self._ident(kids)

    def _path(self, root: str, keys: tuple[Any, ...]) -> Priced:
        known = root in _ROOTS or root in self._bound

        def price(env: Env, budget: _Budget) -> Shape:
            budget.spend(1)
            shape = env.get(root) if known else None
            if shape is None:
                return SCALAR  # a type name or a constant: nothing read
            for key in keys:
                shape = shape.field(key)
            return shape

        return price

    def _member_dot(self, kids: list[Any]) -> Priced:
        operand_tree, name = kids
        path = _path_of(operand_tree)
        if path is not None:
            return self._path(path[0], (*path[1], str(name)))
        operand = self.build(operand_tree)
        key = str(name)

        def price(env: Env, budget: _Budget) -> Shape:
            shape = operand(env, budget)
            budget.spend(1)
            return shape.field(key)

        return price

    def _member_index(self, kids: list[Any]) -> Priced:
        operand_tree, index_tree = kids
        path = _path_of(operand_tree)
        literal = _literal_value(index_tree)
        if path is not None and literal is not None:
            return self._path(path[0], (*path[1], literal))
        operand = self.build(operand_tree)
        index = self.build(index_tree)

        def price(env: Env, budget: _Budget) -> Shape:
            shape = operand(env, budget)
            index(env, budget)
            budget.spend(1)
            return shape.member()

        return price

    def _member_dot_arg(self, kids: list[Any]) -> Priced:
        target_tree, name = kids[0], str(kids[1])
        args = kids[2].children if len(kids) > 2 and kids[2] is not None else []
        if name in _MACROS and len(args) in (2, 3):
            var = _path_of(args[0])
            if var is not None and not var[1]:
                return self._macro(name, target_tree, var[0], args[1:])
        return self._call([target_tree, *args])

    def _ident_arg(self, kids: list[Any]) -> Priced:
        args = kids[1].children if len(kids) > 1 and kids[1] is not None else []
        return self._call(args)

    def _dot_ident_arg(self, kids: list[Any]) -> Priced:
        return self._ident_arg(kids)

    def _call(self, arg_trees: list[Any]) -> Priced:
        # Every function of the standard library builds at most what it is given
        # (string(), dyn(), optional.of()) or less (size(), contains(), int()); priced
        # as a copy of all its arguments, which bounds both.
        args = [self.build(a) for a in arg_trees]

        def price(env: Env, budget: _Budget) -> Shape:
            shapes = [arg(env, budget) for arg in args]
            total = sum(s.bytes for s in shapes)
            budget.spend(1 + total / _COPY_BYTES_PER_STEP)
            if not shapes:
                return SCALAR
            joined = _largest(shapes)
            return budget.built(
                Shape(sum(s.count for s in shapes), total, joined.item(), joined.member())
            )

        return price

    def _macro(self, name: str, range_tree: Any, var: str, body_trees: list[Any]) -> Priced:
        over = self.build(range_tree)
        self._bound.append(var)
        try:
            bodies = [self.build(b) for b in body_trees]
        finally:
            self._bound.pop()

        def price(env: Env, budget: _Budget) -> Shape:
            shape = over(env, budget)
            n = shape.count
            inner = {**env, var: shape.item()}
            # One pricing of the body stands for every iteration: each sees an entry no
            # larger than the largest, so the body's price times the entries bounds all.
            body_budget = _Budget()
            results = [body(inner, body_budget) for body in bodies]
            budget.spend(n * (body_budget.steps + _ITERATION_STEPS))
            if name == "map":
                each = results[-1]
                budget.spend(n * (n - 1) / 2 * _copy_steps(each))
                return budget.built(Shape(n, n * (each.bytes + 1) + 2, each, each))
            if name == "filter":
                budget.spend(n * (n - 1) / 2 * _copy_steps(shape.item()))
                return shape
            return SCALAR

        return price

    def _list_lit(self, kids: list[Any]) -> Priced:
        items = [self.build(k) for k in (kids[0].children if kids and kids[0] is not None else [])]

        def price(env: Env, budget: _Budget) -> Shape:
            shapes = [item(env, budget) for item in items]
            budget.spend(1 + len(shapes))
            largest = _largest(shapes)
            size = sum(s.bytes + 1 for s in shapes) + 2
            return budget.built(Shape(len(shapes), size, largest, largest))

        return price

    def _map_lit(self, kids: list[Any]) -> Priced:
        parts = [self.build(k) for k in (kids[0].children if kids and kids[0] is not None else [])]

        def price(env: Env, budget: _Budget) -> Shape:
            shapes = [part(env, budget) for part in parts]
            budget.spend(1 + len(shapes))
            keys, values = shapes[0::2], shapes[1::2]
            size = sum(s.bytes + 1 for s in shapes) + 2
            return budget.built(Shape(len(keys), size, _largest(keys), _largest(values)))

        return price

    def _member_object(self, kids: list[Any]) -> Priced:
        fields = kids[1].children[1::2] if len(kids) > 1 and kids[1] is not None else []
        return self._call(fields)


def _copy_steps(entry: Shape) -> float:
    """Copying one entry of an accumulated list: a scalar is shared, a map or list is not."""
    if entry.count <= 1:
        return 1
    return 1 + 3 * entry.count + entry.bytes / 8


def _arithmetic(left: Priced, right: Priced) -> Priced:
    def price(env: Env, budget: _Budget) -> Shape:
        left(env, budget)
        right(env, budget)
        budget.spend(1)
        return SCALAR

    return price


def _unwrap(node: Any) -> Any:
    """Down the grammar's single-child levels to the node that does something."""
    while (
        isinstance(node, Tree)
        and len(node.children) == 1
        and node.data
        not in (
            "ident",
            "literal",
            "dot_ident",
            "list_lit",
            "map_lit",
            "ident_arg",
            "dot_ident_arg",
        )
    ):
        node = node.children[0]
    return node


def _path_of(node: Any) -> tuple[str, tuple[Any, ...]] | None:
    """(root, keys) when `node` is a plain path like input.a["b"][0], else None."""
    node = _unwrap(node)
    if not isinstance(node, Tree):
        return None
    if node.data in ("ident", "dot_ident"):
        return str(node.children[0]), ()
    if node.data == "member_dot":
        inner = _path_of(node.children[0])
        if inner is not None:
            return inner[0], (*inner[1], str(node.children[1]))
    if node.data == "member_index":
        inner = _path_of(node.children[0])
        literal = _literal_value(node.children[1])
        if inner is not None and literal is not None:
            return inner[0], (*inner[1], literal)
    return None


def _literal_value(node: Any) -> Any:
    node = _unwrap(node)
    if not isinstance(node, Tree) or node.data != "literal":
        return None
    token = node.children[0]
    if not isinstance(token, Token):
        return None
    text = str(token)
    if token.type == "INT_LIT":
        try:
            return int(text, 0)
        except ValueError:
            return None
    if token.type == "STRING_LIT" and text[:1] in "\"'" and "\\" not in text:
        return text[1:-1]
    return None
