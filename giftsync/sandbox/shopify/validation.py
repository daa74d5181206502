"""Parse/validation errors shaped like Shopify's (HTTP 200, ``errors`` only, no ``data``).

Shopify runs graphql-ruby: its codes (``undefinedField``, ``missingRequiredArguments``,
``missingRequiredInputObjectAttribute``, ``argumentLiteralsIncompatible``, ``selectionMismatch``,
``INVALID_VARIABLE``, ``PARSE_ERROR`` …) and messages are reproduced for the cases captured;
anything else falls back to graphql-core's standard rules with a generic code.
"""
from __future__ import annotations

import json
from typing import Any

from graphql import (GraphQLError, GraphQLInputObjectType, GraphQLList, GraphQLNonNull, GraphQLSchema,
                     TypeInfo, TypeInfoVisitor, Undefined, get_named_type, is_composite_type, is_input_object_type,
                     is_leaf_type, is_list_type, is_non_null_type, specified_rules, validate, value_from_ast, visit)
from graphql.language import (FieldNode, ObjectValueNode, OperationDefinitionNode, Source, TokenKind, Visitor,
                              VariableNode)
from graphql.language.lexer import Lexer
from graphql.validation import (FieldsOnCorrectTypeRule, KnownArgumentNamesRule, NoUndefinedVariablesRule,
                                NoUnusedVariablesRule, ProvidedRequiredArgumentsRule, ScalarLeafsRule,
                                ValuesOfCorrectTypeRule, VariablesInAllowedPositionRule)

COVERED_RULES = {FieldsOnCorrectTypeRule, ScalarLeafsRule, ProvidedRequiredArgumentsRule, KnownArgumentNamesRule,
                 ValuesOfCorrectTypeRule, NoUndefinedVariablesRule, NoUnusedVariablesRule,
                 VariablesInAllowedPositionRule}
OTHER_RULES = [r for r in specified_rules if r not in COVERED_RULES]


def _loc(node) -> list[dict]:
    if node is None or node.loc is None:
        return []
    from graphql.language import get_location
    loc = get_location(node.loc.source, node.loc.start)
    return [{"line": loc.line, "column": loc.column}]


def _error(message: str, node, path: list | None, **ext: Any) -> dict:
    out: dict[str, Any] = {"message": message, "locations": _loc(node)}
    if path is not None:
        out["path"] = path
    out["extensions"] = ext
    return out


def parse_error(source_text: str, exc: GraphQLError) -> dict:
    """graphql-ruby style: 'syntax error, unexpected end of file at [3, 5]' (position of the last token)."""
    line, col = (exc.locations[0].line, exc.locations[0].column) if exc.locations else (1, 1)
    desc = exc.message
    if "<EOF>" in desc:
        last = None
        try:
            lexer = Lexer(Source(source_text))
            tok = lexer.advance()
            while tok.kind != TokenKind.EOF:
                last = tok
                tok = lexer.advance()
        except GraphQLError:
            pass
        if last is not None:
            line, col = last.line, last.column
        text = "unexpected end of file"
    else:
        text = desc.replace("Syntax Error: ", "").rstrip(".")
        text = "unexpected " + text if not text.lower().startswith("unexpected") else text[0].lower() + text[1:]
    return {"message": f"syntax error, {text} at [{line}, {col}]", "locations": [{"line": line, "column": col}],
            "extensions": {"code": "PARSE_ERROR"}}


def _type_str(t) -> str:
    return str(t)


class _ShopifyRules(Visitor):
    def __init__(self, schema: GraphQLSchema, type_info: TypeInfo, errors: list[dict]) -> None:
        super().__init__()
        self.schema = schema
        self.ti = type_info
        self.errors = errors
        self.path: list[str] = []
        self.op_vars: dict[str, Any] = {}
        self.used_vars: set[str] = set()
        self.op_node: OperationDefinitionNode | None = None
        self.field_names: list[str] = []

    # operations / fragments give the first path element
    def enter_operation_definition(self, node, *_):
        name = f"{node.operation.value} {node.name.value}" if node.name else node.operation.value
        self.path = [name]
        self.op_node = node
        self.op_vars = {v.variable.name.value: v for v in node.variable_definitions or ()}
        self.used_vars = set()

    def leave_operation_definition(self, node, *_):
        for name, vdef in self.op_vars.items():
            if name not in self.used_vars:
                op = node.name.value if node.name else "anonymous query"
                self.errors.append(_error(f"Variable ${name} is declared by {op} but not used", vdef, [self.path[0]],
                                          code="variableNotUsed", variableName=name))
        self.path = []

    def enter_fragment_definition(self, node, *_):
        self.path = [f"fragment {node.name.value}"]

    def leave_fragment_definition(self, node, *_):
        self.path = []

    def enter_field(self, node: FieldNode, *_):
        key = node.alias.value if node.alias else node.name.value
        self.path.append(key)
        self.field_names.append(node.name.value)
        parent = self.ti.get_parent_type()
        fdef = self.ti.get_field_def()
        name = node.name.value
        if parent is not None and fdef is None and not name.startswith("__"):
            self.errors.append(_error(f"Field '{name}' doesn't exist on type '{parent.name}'", node, list(self.path),
                                      code="undefinedField", typeName=parent.name, fieldName=name))
            return
        if fdef is None:
            return
        named = get_named_type(fdef.type)
        if is_leaf_type(named) and node.selection_set:
            sels = ", ".join(s.name.value for s in node.selection_set.selections if isinstance(s, FieldNode))
            self.errors.append(_error(
                f"Selections can't be made on {'scalars' if not hasattr(named, 'values') else 'enums'} "
                f"(field '{name}' returns {named.name} but has selections [{sels}])", node, list(self.path),
                code="selectionMismatch", nodeName=f"field '{name}'", typeName=named.name))
        elif is_composite_type(named) and not node.selection_set:
            self.errors.append(_error(
                f"Field must have selections (field '{name}' returns {named.name} but has no selections. "
                f"Did you mean '{name} {{ ... }}'?)", node, list(self.path),
                code="selectionMismatch", nodeName=f"field '{name}'", typeName=named.name))
        given = {a.name.value for a in node.arguments or ()}
        for a in node.arguments or ():
            if a.name.value not in fdef.args:
                self.errors.append(_error(f"Field '{name}' doesn't accept argument '{a.name.value}'", a,
                                          list(self.path) + [a.name.value], code="argumentNotAccepted",
                                          name=name, typeName="Field", argumentName=a.name.value))
        missing = [n for n, a in fdef.args.items()
                   if is_non_null_type(a.type) and a.default_value is Undefined and n not in given]
        if missing:
            self.errors.append(_error(f"Field '{name}' is missing required arguments: {', '.join(missing)}", node,
                                      list(self.path), code="missingRequiredArguments", className="Field",
                                      name=name, arguments=", ".join(missing)))

    def leave_field(self, node, *_):
        if self.path:
            self.path.pop()
        if self.field_names:
            self.field_names.pop()

    def enter_argument(self, node, *_):
        self.path.append(node.name.value)
        arg = self.ti.get_argument()
        if arg is None:
            return
        field = self.field_names[-1] if self.field_names else ""
        self._check_value(node.value, arg.type, f"Argument '{node.name.value}' on Field '{field}'",
                          node.name.value, list(self.path))

    def leave_argument(self, node, *_):
        if self.path:
            self.path.pop()

    def enter_variable(self, node: VariableNode, *_):
        name = node.name.value
        self.used_vars.add(name)
        if self.op_node is not None and name not in self.op_vars:
            op = self.op_node.name.value if self.op_node.name else "anonymous query"
            self.errors.append(_error(f"Variable ${name} is used by {op} but not declared", node, list(self.path),
                                      code="variableNotDefined", variableName=name))
            return
        expected = self.ti.get_input_type()
        vdef = self.op_vars.get(name)
        if expected is None or vdef is None:
            return
        from graphql.utilities import type_from_ast
        declared = type_from_ast(self.schema, vdef.type)
        if declared is None:
            return
        if not _type_allowed(declared, expected, vdef.default_value is not None):
            code = "variableMismatch"
            self.errors.append(_error(
                f"{'Nullability' if get_named_type(declared) == get_named_type(expected) else 'Type'} mismatch on "
                f"variable ${name} and argument {self.path[-1] if self.path else name} "
                f"({declared} / {expected})", node, list(self.path), code=code, variableName=name,
                typeName=str(declared), argumentName=self.path[-1] if self.path else name, errorMessage=
                "Nullability mismatch" if get_named_type(declared) == get_named_type(expected) else "Type mismatch"))

    def _check_value(self, value_node, type_, label: str, arg_name: str, path: list) -> None:
        """Literal checks: missing required input-object fields, unknown fields, incompatible literals."""
        if isinstance(value_node, VariableNode):
            return
        inner = type_.of_type if is_non_null_type(type_) else type_
        if is_input_object_type(inner) and isinstance(value_node, ObjectValueNode):
            given = {f.name.value: f for f in value_node.fields}
            for fname, fnode in given.items():
                if fname not in inner.fields:
                    self.errors.append(_error(f"InputObject '{inner.name}' doesn't accept argument '{fname}'",
                                              fnode, path + [fname], code="argumentNotAccepted", name=inner.name,
                                              typeName="InputObject", argumentName=fname))
            for fname, fdef in inner.fields.items():
                if is_non_null_type(fdef.type) and fdef.default_value is Undefined and fname not in given:
                    self.errors.append(_error(
                        f"Argument '{fname}' on InputObject '{inner.name}' is required. Expected type {fdef.type}",
                        value_node, path + [fname], code="missingRequiredInputObjectAttribute",
                        argumentName=fname, argumentType=str(fdef.type), inputObjectType=inner.name))
            for fname, fnode in given.items():
                if fname in inner.fields:
                    self._check_value(fnode.value, inner.fields[fname].type,
                                      f"Argument '{fname}' on InputObject '{inner.name}'", fname, path + [fname])
            return
        if is_list_type(inner) and hasattr(value_node, "values"):
            for v in value_node.values:
                self._check_value(v, inner.of_type, label, arg_name, path)
            return
        if _contains_variable(value_node):
            return
        if value_from_ast(value_node, type_, {}) is Undefined:
            from graphql.language import print_ast
            self.errors.append(_error(
                f"{label} has an invalid value ({print_ast(value_node)}). Expected type '{type_}'.", value_node,
                path, code="argumentLiteralsIncompatible", typeName=label.split(" on ")[1].split(" ")[0],
                argumentName=arg_name))


def _contains_variable(node) -> bool:
    if isinstance(node, VariableNode):
        return True
    for attr in ("values", "fields"):
        for child in getattr(node, attr, None) or ():
            if _contains_variable(getattr(child, "value", child)):
                return True
    return False


def _type_allowed(declared, expected, has_default: bool) -> bool:
    if is_non_null_type(expected) and not is_non_null_type(declared):
        if not has_default:
            return False
        expected = expected.of_type
    if is_non_null_type(declared):
        declared = declared.of_type
    if is_non_null_type(expected):
        expected = expected.of_type
    if is_list_type(expected):
        return is_list_type(declared) and _type_allowed(declared.of_type, expected.of_type, False)
    if is_list_type(declared):
        return False
    return get_named_type(declared) == get_named_type(expected)


def validate_document(schema: GraphQLSchema, document) -> list[dict]:
    errors: list[dict] = []
    type_info = TypeInfo(schema)
    visit(document, TypeInfoVisitor(type_info, _ShopifyRules(schema, type_info, errors)))
    for err in validate(schema, document, OTHER_RULES):
        errors.append({"message": err.message,
                       "locations": [{"line": l.line, "column": l.column} for l in err.locations or ()],
                       "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}})
    return errors


# -- variables ------------------------------------------------------------------------------
def _problems(value: Any, type_, path: list) -> list[dict]:
    if is_non_null_type(type_):
        if value is None or value is Undefined:
            return [{"path": path, "explanation": "Expected value to not be null"}]
        return _problems(value, type_.of_type, path)
    if value is None or value is Undefined:
        return []
    if isinstance(type_, GraphQLList):
        if isinstance(value, list):
            out = []
            for i, item in enumerate(value):
                out.extend(_problems(item, type_.of_type, path + [i]))
            return out
        return _problems(value, type_.of_type, path)
    if isinstance(type_, GraphQLInputObjectType):
        if not isinstance(value, dict):
            return [{"path": path, "explanation": f"Expected {json.dumps(value)} to be a key-value object."}]
        out = []
        for k in value:
            if k not in type_.fields:
                out.append({"path": path + [k], "explanation": f"Field is not defined on {type_.name}"})
        for k, f in type_.fields.items():
            v = value.get(k, Undefined)
            if v is Undefined and f.default_value is not Undefined:
                continue
            out.extend(_problems(v, f.type, path + [k]))
        return out
    # scalars and enums
    try:
        if hasattr(type_, "values"):                     # enum
            ok = isinstance(value, str) and value in type_.values
        else:
            coerce = getattr(type_, "coerce_input_value", None) or type_.parse_value
            ok = coerce(value) is not Undefined
    except (GraphQLError, ValueError, TypeError, ArithmeticError):
        ok = False
    if not ok:
        return [{"path": path, "explanation": f"Could not coerce value {json.dumps(value)} to {type_.name}"}]
    return []


def validate_variables(schema: GraphQLSchema, operation: OperationDefinitionNode, variables: dict) -> list[dict]:
    from graphql.utilities import type_from_ast
    errors = []
    for vdef in operation.variable_definitions or ():
        name = vdef.variable.name.value
        vtype = type_from_ast(schema, vdef.type)
        if vtype is None:
            continue
        value = variables.get(name, Undefined)
        if value is Undefined and vdef.default_value is not None:
            continue
        problems = _problems(value, vtype, [])
        if not problems:
            continue
        detail = ", ".join(f"{'.'.join(str(p) for p in pr['path'])} ({pr['explanation']})"
                           for pr in problems if pr["path"])
        message = f"Variable ${name} of type {vtype} was provided invalid value" + (f" for {detail}" if detail else "")
        errors.append({"message": message, "locations": _loc(vdef),
                       "extensions": {"code": "INVALID_VARIABLE", "value": None if value is Undefined else value,
                                      "problems": problems}})
    return errors
