"""A tiny, safe expression language for vector arithmetic (`kind: expr`).

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := ("-" | "+") unary | atom
    atom   := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Names are other vectors; functions are unit(v), proj(v, onto) and reject(v, from). The text is
tokenized and parsed here, never handed to Python's eval, and type-checked so that
`a * b` (vector times vector) or `2 + a` fails at validation time, before any model is loaded.
Evaluation is generic over the value type: the vector stage passes torch tensors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FUNCTIONS", "ExprError", "Node", "evaluate", "names_in", "parse", "type_check"]

FUNCTIONS: dict[str, int] = {"unit": 1, "proj": 2, "reject": 2}
MAX_LENGTH = 2000
MAX_NODES = 500

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/(),]))"
)


class ExprError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        self.offset = offset
        super().__init__(f"{message} (at character {offset + 1})")


@dataclass(frozen=True)
class Node:
    kind: Literal["number", "name", "unary", "binary", "call"]
    offset: int
    value: Any = None  # number value, name, operator or function name
    args: tuple[Node, ...] = ()


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise ExprError(f"unexpected character {text[start]!r}", start)
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.count = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        kind, text, offset = self.take()
        if text != value:
            found = "end of expression" if kind == "end" else repr(text)
            raise ExprError(f"expected {value!r}, found {found}", offset)

    def node(self, *args: Any, **kw: Any) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise ExprError(f"expression has more than {MAX_NODES} terms", 0)
        return Node(*args, **kw)

    def expr(self, depth: int = 0) -> Node:
        if depth > 50:
            raise ExprError("expression nests too deeply", self.peek()[2])
        left = self.term(depth)
        while self.peek()[1] in ("+", "-"):
            _, op, offset = self.take()
            left = self.node("binary", offset, op, (left, self.term(depth)))
        return left

    def term(self, depth: int) -> Node:
        left = self.unary(depth)
        while self.peek()[1] in ("*", "/"):
            _, op, offset = self.take()
            left = self.node("binary", offset, op, (left, self.unary(depth)))
        return left

    def unary(self, depth: int) -> Node:
        # Unary signs recurse too: without this bound, 1500 of them ("- - - ... a", well
        # under MAX_LENGTH) overflow Python's stack before any other limit is reached.
        if depth > 50:
            raise ExprError("expression nests too deeply", self.peek()[2])
        if self.peek()[1] in ("-", "+"):
            _, op, offset = self.take()
            return self.node("unary", offset, op, (self.unary(depth + 1),))
        return self.atom(depth)

    def atom(self, depth: int) -> Node:
        kind, text, offset = self.take()
        if kind == "number":
            return self.node("number", offset, float(text))
        if kind == "name":
            if self.peek()[1] != "(":
                return self.node("name", offset, text)
            if text not in FUNCTIONS:
                known = ", ".join(sorted(FUNCTIONS))
                raise ExprError(f"unknown function {text!r} (known: {known})", offset)
            self.take()
            args = [self.expr(depth + 1)]
            while self.peek()[1] == ",":
                self.take()
                args.append(self.expr(depth + 1))
            self.expect(")")
            if len(args) != FUNCTIONS[text]:
                raise ExprError(
                    f"{text}() takes {FUNCTIONS[text]} argument(s), got {len(args)}", offset
                )
            return self.node("call", offset, text, tuple(args))
        if text == "(":
            inner = self.expr(depth + 1)
            self.expect(")")
            return inner
        found = "end of expression" if kind == "end" else repr(text)
        raise ExprError(f"expected a name, number or '(', found {found}", offset)


def parse(text: str) -> Node:
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters", 0)
    parser = _Parser(text)
    tree = parser.expr()
    kind, rest, offset = parser.peek()
    if kind != "end":
        raise ExprError(f"unexpected {rest!r} after a complete expression", offset)
    return tree


def names_in(node: Node) -> list[tuple[str, int]]:
    """Every vector name the expression reads, with its offset, in reading order."""
    if node.kind == "name":
        return [(node.value, node.offset)]
    return [found for arg in node.args for found in names_in(arg)]


def type_check(node: Node) -> Literal["scalar", "vector"]:
    """Raise ExprError unless the expression is well-typed; return its type."""
    if node.kind == "number":
        return "scalar"
    if node.kind == "name":
        return "vector"
    if node.kind == "unary":
        return type_check(node.args[0])
    if node.kind == "call":
        for arg in node.args:
            if type_check(arg) != "vector":
                raise ExprError(f"{node.value}() takes vectors, not numbers", arg.offset)
        return "vector"
    left, right = (type_check(a) for a in node.args)
    op = node.value
    if op in "+-":
        if left != right:
            raise ExprError(
                f"cannot {'add' if op == '+' else 'subtract'} a number and a vector", node.offset
            )
        return left
    if op == "*":
        if left == right == "vector":
            raise ExprError("cannot multiply two vectors (use proj() for projections)", node.offset)
        return "vector" if "vector" in (left, right) else "scalar"
    if right == "vector":
        raise ExprError("cannot divide by a vector", node.offset)
    return left


def evaluate(
    node: Node, env: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]
) -> Any:
    """Evaluate a type-checked tree; `env` maps names to values supporting + - * /."""
    if node.kind == "number":
        return node.value
    if node.kind == "name":
        return env[node.value]
    args = [evaluate(arg, env, functions) for arg in node.args]
    if node.kind == "unary":
        return -args[0] if node.value == "-" else args[0]
    if node.kind == "call":
        return functions[node.value](*args)
    left, right = args
    if node.value == "+":
        return left + right
    if node.value == "-":
        return left - right
    if node.value == "*":
        return left * right
    return left / right
