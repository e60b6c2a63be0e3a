"""Validation errors as one line per problem: the file, the key (a program by its name) and
what was expected.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than": "<",
    "less_than_equal": "<=",
}
_SCALARS = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false"}


def _is_tag(part: object) -> bool:
    """A union member pydantic puts in an error's location (``int``, ``list[SuiteStep]``)."""
    return isinstance(part, str) and (part in _SCALARS or part in ("date", "none") or "[" in part)


def _tag_text(tag: str) -> str:
    if tag in _SCALARS:
        return _SCALARS[tag]
    if tag.startswith("list["):
        return "a list of tables" if tag[5:6].isupper() else "a list"
    return tag


def _one_branch(errors: list[dict]) -> list[dict]:
    """A value that may take several forms (``suites``: a number or a list of steps) failed
    every form: report the form whose shape the value had (a list's bad step, not "expected
    a whole number"), or one line naming the forms when it had none of them."""
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    out: list[dict] = []
    for err in errors:
        loc = tuple(err["loc"])
        at = next((i for i, part in enumerate(loc) if _is_tag(part)), None)
        if at is None:
            out.append(err)
        else:
            groups.setdefault(loc[:at], []).append((at, err))
    for prefix, members in groups.items():
        deep = [e for at, e in members if len(e["loc"]) > at + 1]
        tags = list(dict.fromkeys(e["loc"][at] for at, e in members))
        if len(tags) > 1 and not deep:
            forms = " or ".join(_tag_text(t) for t in tags)
            got = members[0][1].get("input")
            out.append({"loc": prefix, "type": "union", "msg": f"expected {forms}, got {got!r}"})
            continue
        keep = deep if len(tags) > 1 else [e for _, e in members]
        out += [{**e, "loc": tuple(p for p in e["loc"] if not _is_tag(p))} for e in keep]
    return out


def _program_name(programs: Any, i: Any) -> str:
    if isinstance(programs, list) and isinstance(i, int) and 0 <= i < len(programs):
        entry = programs[i]
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            return f" ({entry['name']})"
    return ""


def describe_validation_error(exc: ValidationError, source: str, raw: dict | None = None) -> str:
    """One line per problem: the file, the key and what was expected. With the scenario's
    ``raw`` data a program is named too: ``program[1] (CART-B).uptake.peak_share``."""
    programs = (raw or {}).get("program")
    lines = []
    for err in _one_branch(exc.errors()):
        loc = ""
        for j, part in enumerate(err["loc"]):
            loc += f"[{part}]" if isinstance(part, int) else ("." if loc else "") + str(part)
            if j == 1 and err["loc"][0] == "program":
                loc += _program_name(programs, part)
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if kind == "finite_number":
                msg = f"expected a finite number, got {err.get('input')!r}"
            elif kind in ("int_type", "int_parsing", "int_from_float"):
                msg = f"expected a whole number, got {err.get('input')!r}"
            elif kind.startswith("date"):
                msg = f"expected a date such as 2027-01-01, got {err.get('input')!r}"
            elif kind in _BOUNDS:
                bound = next(iter(err.get("ctx", {}).values()), "")
                if isinstance(bound, int | float):
                    bound = f"{bound:g}"
                msg = f"must be {_BOUNDS[kind]} {bound}, got {err.get('input')!r}"
        lines.append(f"{source}: {loc or 'scenario'}: {msg}")
    return lines[0] if len(lines) == 1 else "\n".join([f"{len(lines)} problems:", *lines])
