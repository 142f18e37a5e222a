"""Top-level symbols of a source file, read with the official tree-sitter grammars.

Each language has a `_Spec`: which node types define a symbol (and of what kind), which of
those hold members (classes, traits, namespaces...), and which node types are only walked
through (`export`, decorators, `#ifdef`...). The walk never enters a function body, so only
top-level definitions and members of types are reported. Grammars load on first use, once
per process.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from tree_sitter import Language, Node, Parser

# (name, kind, line, parent): what workers send back, cheaper to pickle than dataclasses
RawSymbol = tuple[str, str, int, str | None]
# (name, kind, parent) of one definition
_Found = tuple[str, str, str | None]

_MAX_DEPTH = 40


@dataclass(frozen=True, slots=True)
class _Spec:
    module: str
    loader: str
    defs: Mapping[str, str]
    containers: frozenset[str] = frozenset()
    passthrough: frozenset[str] = frozenset()


_JS_DEFS = {
    "class_declaration": "class",
    "class": "class",
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "method_definition": "function",
    "lexical_declaration": "function",  # only `const f = () => ...` and `const C = class`
    "variable_declaration": "function",
}
_TS_DEFS = {
    **_JS_DEFS,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "internal_module": "namespace",
    "module": "namespace",
    "method_signature": "function",
    "abstract_method_signature": "function",
    "function_signature": "function",
}
_JS_PASS = frozenset({"export_statement", "expression_statement", "statement_block"})
_TS_PASS = _JS_PASS | {"ambient_declaration"}
_TS_CONTAINERS = frozenset(
    {"class_declaration", "class", "abstract_class_declaration", "interface_declaration",
     "internal_module", "module"}
)  # fmt: skip
_C_DEFS = {
    "function_definition": "function",
    "declaration": "function",  # only prototypes: declarations with a function declarator
    "field_declaration": "function",  # only member functions
    "struct_specifier": "struct",
    "union_specifier": "struct",
    "enum_specifier": "enum",
    "type_definition": "type",
}
_C_PASS = frozenset(
    {"preproc_ifdef", "preproc_if", "preproc_else", "preproc_elif", "preproc_elifdef",
     "linkage_specification", "declaration_list", "field_declaration_list"}
)  # fmt: skip

_SPECS: dict[str, _Spec] = {
    "python": _Spec(
        "tree_sitter_python", "language",
        {"class_definition": "class", "function_definition": "function",
         "type_alias_statement": "type"},
        frozenset({"class_definition"}),
        frozenset({"decorated_definition", "if_statement", "else_clause", "elif_clause",
                   "try_statement", "except_clause", "finally_clause", "block"}),
    ),
    "javascript": _Spec(
        "tree_sitter_javascript", "language", _JS_DEFS,
        frozenset({"class_declaration", "class"}), _JS_PASS,
    ),
    "typescript": _Spec(
        "tree_sitter_typescript", "language_typescript", _TS_DEFS, _TS_CONTAINERS, _TS_PASS
    ),
    "tsx": _Spec("tree_sitter_typescript", "language_tsx", _TS_DEFS, _TS_CONTAINERS, _TS_PASS),
    "go": _Spec(
        "tree_sitter_go", "language",
        {"function_declaration": "function", "method_declaration": "method",
         "type_spec": "type", "type_alias": "type"},
        passthrough=frozenset({"type_declaration"}),
    ),
    "rust": _Spec(
        "tree_sitter_rust", "language",
        {"function_item": "function", "function_signature_item": "function",
         "struct_item": "struct", "union_item": "struct", "enum_item": "enum",
         "trait_item": "trait", "type_item": "type", "mod_item": "module",
         "impl_item": "impl", "macro_definition": "macro"},
        frozenset({"trait_item", "mod_item", "impl_item"}),
        frozenset({"declaration_list"}),
    ),
    "java": _Spec(
        "tree_sitter_java", "language",
        {"class_declaration": "class", "interface_declaration": "interface",
         "enum_declaration": "enum", "record_declaration": "record",
         "annotation_type_declaration": "interface", "method_declaration": "function",
         "constructor_declaration": "function"},
        frozenset({"class_declaration", "interface_declaration", "enum_declaration",
                   "record_declaration"}),
        frozenset({"enum_body_declarations"}),
    ),
    "csharp": _Spec(
        "tree_sitter_c_sharp", "language",
        {"namespace_declaration": "namespace", "class_declaration": "class",
         "interface_declaration": "interface", "struct_declaration": "struct",
         "enum_declaration": "enum", "record_declaration": "record",
         "delegate_declaration": "type", "method_declaration": "function",
         "constructor_declaration": "function"},
        frozenset({"namespace_declaration", "class_declaration", "interface_declaration",
                   "struct_declaration", "record_declaration"}),
        frozenset({"declaration_list"}),
    ),
    "ruby": _Spec(
        "tree_sitter_ruby", "language",
        {"module": "module", "class": "class", "method": "function",
         "singleton_method": "function"},
        frozenset({"module", "class"}),
        frozenset({"body_statement"}),
    ),
    "php": _Spec(
        "tree_sitter_php", "language_php",
        {"namespace_definition": "namespace", "class_declaration": "class",
         "interface_declaration": "interface", "trait_declaration": "trait",
         "enum_declaration": "enum", "function_definition": "function",
         "method_declaration": "function"},
        frozenset({"namespace_definition", "class_declaration", "interface_declaration",
                   "trait_declaration", "enum_declaration"}),
        frozenset({"compound_statement", "declaration_list", "enum_declaration_list"}),
    ),
    "c": _Spec("tree_sitter_c", "language", _C_DEFS, passthrough=_C_PASS),
    "cpp": _Spec(
        "tree_sitter_cpp", "language",
        {**_C_DEFS, "class_specifier": "class", "namespace_definition": "namespace",
         "alias_declaration": "type"},
        frozenset({"class_specifier", "struct_specifier", "namespace_definition"}),
        _C_PASS | {"template_declaration"},
    ),
    "bash": _Spec("tree_sitter_bash", "language", {"function_definition": "function"}),
}  # fmt: skip

GRAMMAR_LANGUAGES = frozenset(_SPECS)

_GO_TYPE_KINDS = {"struct_type": "struct", "interface_type": "interface"}
_C_TYPE_KINDS = {
    "struct_specifier": "struct",
    "union_specifier": "struct",
    "enum_specifier": "enum",
}
_JS_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_C_NAME_TYPES = frozenset(
    {"identifier", "field_identifier", "qualified_identifier", "destructor_name",
     "operator_name", "type_identifier"}
)  # fmt: skip
_NAMESPACE_KINDS = frozenset({"namespace", "module"})


@cache
def _parser(language: str) -> Parser:
    spec = _SPECS[language]
    loader: Callable[[], object] = getattr(importlib.import_module(spec.module), spec.loader)
    return Parser(Language(loader()))


def parse_symbols(language: str, data: bytes) -> list[RawSymbol]:
    """The top-level symbols and type members of `data`, a file in one of GRAMMAR_LANGUAGES."""
    tree = _parser(language).parse(data)
    out: list[RawSymbol] = []
    _walk(tree.root_node, _SPECS[language], None, "", out, depth=0)
    return out


def _walk(
    node: Node,
    spec: _Spec,
    parent: str | None,
    parent_kind: str,
    out: list[RawSymbol],
    *,
    depth: int,
) -> None:
    """Report the definitions among `node`'s children; enter containers and passthroughs."""
    if depth > _MAX_DEPTH:
        return
    for child in node.named_children:
        kind = spec.defs.get(child.type)
        if kind is None:
            if child.type in spec.passthrough:
                _walk(child, spec, parent, parent_kind, out, depth=depth + 1)
            continue
        found = _definition(child, kind, parent)
        if found is None:
            continue
        name, kind, owner = found
        if kind == "method" and owner == parent and parent_kind in _NAMESPACE_KINDS:
            kind = "function"  # a function in a namespace or module is no method
        if kind != "impl":
            out.append((name, kind, child.start_point[0] + 1, owner))
        if child.type in spec.containers:
            body = child.child_by_field_name("body") or child
            _walk(body, spec, name, kind, out, depth=depth + 1)


def _definition(node: Node, kind: str, parent: str | None) -> _Found | None:
    """(name, kind, parent) of a definition node, or None when it defines nothing we report."""
    return _SPECIAL.get(node.type, _named)(node, kind, parent)


def _named(node: Node, kind: str, parent: str | None, field_name: str = "name") -> _Found | None:
    """The common case: the name is the node's `name` field; a function in a type is a method."""
    name_node = node.child_by_field_name(field_name)
    if name_node is None:
        return None
    name = _text(name_node) if kind in _NAMESPACE_KINDS else _last_name(name_node)
    if not name:
        return None
    if kind == "function" and parent is not None:
        kind = "method"
    return name, kind, parent


def _python_type_alias(node: Node, kind: str, parent: str | None) -> _Found | None:
    return _named(node, kind, parent, "left")  # `type X = ...` names its alias on the left


def _js_variable(node: Node, kind: str, parent: str | None) -> _Found | None:
    """`const f = () => ...` is a function and `const C = class {...}` a class; others no."""
    for declarator in node.named_children:
        value = declarator.child_by_field_name("value")
        if declarator.type != "variable_declarator" or value is None:
            continue
        if value.type in _JS_FUNCTION_VALUES:
            kind = "function"
        elif value.type == "class":
            kind = "class"
        else:
            continue
        name = _text(declarator.child_by_field_name("name"))
        return (name, kind, parent) if name else None
    return None


def _c_function(node: Node, kind: str, parent: str | None) -> _Found | None:
    """A C/C++ function definition or prototype; `A::b()` is a method of A."""
    declarator = node.child_by_field_name("declarator")
    if declarator is None:  # python's and bash's function_definition
        return _named(node, kind, parent)
    while declarator is not None and declarator.type != "function_declarator":
        declarator = declarator.child_by_field_name("declarator")
    name_node = declarator.child_by_field_name("declarator") if declarator else None
    if name_node is None or name_node.type not in _C_NAME_TYPES:
        return None
    owner = parent
    if name_node.type == "qualified_identifier":  # `double geo::Point::norm() {...}`
        scope = name_node.child_by_field_name("scope")
        inner = name_node.child_by_field_name("name")
        while inner is not None and inner.type == "qualified_identifier":
            scope, name_node = inner.child_by_field_name("scope"), inner
            inner = inner.child_by_field_name("name")
        owner = _text(scope) or owner
        name_node = inner or name_node
    name = _text(name_node)
    if not name:
        return None
    return name, "function" if owner is None else "method", owner


def _c_typedef(node: Node, kind: str, parent: str | None) -> _Found | None:
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "type_identifier":
        declarator = declarator.child_by_field_name("declarator")
    name = _text(declarator)
    if not name:
        return None
    type_node = node.child_by_field_name("type")
    return name, _C_TYPE_KINDS.get(type_node.type if type_node else "", kind), parent


def _c_tagged(node: Node, kind: str, parent: str | None) -> _Found | None:
    if node.child_by_field_name("body") is None:
        return None  # `struct x *p;`: a use, not a definition
    return _named(node, kind, parent)


def _go_method(node: Node, kind: str, parent: str | None) -> _Found | None:
    """Go methods belong to their receiver's type; other languages' methods to their class."""
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return _named(node, kind, parent)
    name = _text(node.child_by_field_name("name"))
    return (name, "method", _go_receiver(receiver)) if name else None


def _go_type_spec(node: Node, kind: str, parent: str | None) -> _Found | None:
    type_node = node.child_by_field_name("type")
    return _named(node, _GO_TYPE_KINDS.get(type_node.type if type_node else "", kind), parent)


def _rust_impl(node: Node, kind: str, parent: str | None) -> _Found | None:
    name = _innermost_type(node.child_by_field_name("type"))
    return (name, "impl", parent) if name else None


_SPECIAL: dict[str, Callable[[Node, str, str | None], _Found | None]] = {
    "lexical_declaration": _js_variable,
    "variable_declaration": _js_variable,
    "function_definition": _c_function,
    "declaration": _c_function,
    "field_declaration": _c_function,
    "type_definition": _c_typedef,
    "struct_specifier": _c_tagged,
    "union_specifier": _c_tagged,
    "enum_specifier": _c_tagged,
    "class_specifier": _c_tagged,
    "method_declaration": _go_method,
    "type_spec": _go_type_spec,
    "impl_item": _rust_impl,
    "type_alias_statement": _python_type_alias,
}


def _go_receiver(receiver: Node) -> str | None:
    for parameter in receiver.named_children:
        return _innermost_type(parameter.child_by_field_name("type"))
    return None


def _innermost_type(node: Node | None) -> str | None:
    """`*Store[T]` -> `Store`; `Wrapper<T>` -> `Wrapper`."""
    while node is not None and node.type not in ("type_identifier", "identifier"):
        inner = node.child_by_field_name("name") or node.child_by_field_name("type")
        if inner is None:
            inner = next((c for c in node.named_children if c.type != "type_arguments"), None)
        node = inner
    return _text(node) or None


def _last_name(node: Node) -> str:
    """The final part of a qualified name: `Shop::Order` -> `Order`, `A.B` -> `B`."""
    while True:
        inner = node.child_by_field_name("name")
        if inner is None:
            return _text(node)
        node = inner


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")
