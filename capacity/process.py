"""Process specifications: how one lot uses a suite, QC, operators and QA.

A process is a TOML file or the name of a bundled template (``load_process("car-t-autologous-
manual")``). Field names carry their units. Any uncertain numeric field may be a distribution
(see :mod:`capacity.distributions`); whole-number fields (``lots_per_suite``,
``max_remanufacture``, ``shifts_per_day``, ``min_operators_per_suite_shift``) are fixed integers
because they describe how the plant is run, not something we are unsure of.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import xarray as xr
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from capacity.distributions import Param, check_seed, stream_rng
from capacity.errors import InputError, ProcessSpecError
from capacity.materials import BillOfMaterials
from capacity.vector import VectorSpec

__all__ = [
    "ProcessSpec",
    "QCAssay",
    "check_seed",
    "load_process",
    "process_templates",
    "stream_rng",
]


def _non_negative(p: Param) -> Param:
    if p.support[0] < 0:
        raise ValueError(f"must be >= 0 (a duration or amount), got {p}")
    return p


def _positive(p: Param) -> Param:
    low = p.support[0]
    if low < 0 or (low == 0 and p.kind in ("fixed", "triangular", "uniform")):
        raise ValueError(f"must be > 0, got {p}")
    return p


def _rate(p: Param) -> Param:
    low, high = p.support
    if low < 0 or high > 1:
        raise ValueError(f"must be a rate in [0, 1], got {p}")
    return p


def _as_param(raw: Any) -> Param:
    return Param.parse(raw)


_Base = Annotated[
    Param,
    BeforeValidator(_as_param),
    PlainSerializer(lambda p: p.to_toml(), return_type=Any),
]
NonNegative = Annotated[_Base, AfterValidator(_non_negative)]
Positive = Annotated[_Base, AfterValidator(_positive)]
Rate = Annotated[_Base, AfterValidator(_rate)]


def _as_bill(raw: Any) -> BillOfMaterials | None:
    if raw is None:
        return None
    try:
        return BillOfMaterials.from_mapping(raw, "materials")
    except InputError as exc:
        raise ValueError(str(exc).removeprefix("materials: ")) from None


Materials = Annotated[
    BillOfMaterials | None,
    BeforeValidator(_as_bill),
    PlainSerializer(lambda b: None if b is None else b.to_toml(), return_type=Any),
]


def _as_vector(raw: Any) -> VectorSpec | None:
    if raw is None:
        return None
    try:
        return VectorSpec.from_mapping(raw, "vector")
    except InputError as exc:
        raise ValueError(str(exc).removeprefix("vector: ")) from None


Vector = Annotated[
    VectorSpec | None,
    BeforeValidator(_as_vector),
    PlainSerializer(lambda v: None if v is None else v.to_toml(), return_type=Any),
]

_CONFIG = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class QCAssay(BaseModel):
    """One assay of the lot-release panel.

    ``hands_on_hours`` is analyst time per test; ``turnaround_days`` is the wait for a result
    (e.g. 14 days of sterility incubation), which delays release but uses no analyst time.
    """

    model_config = _CONFIG

    assay: str = Field(min_length=1)
    tests_per_lot: Positive = Param.fixed(1)
    hands_on_hours: NonNegative
    turnaround_days: NonNegative
    instrument: str | None = None
    instrument_hours: NonNegative = Param.fixed(0)
    retest_rate: Rate = Param.fixed(0)


class ProcessSpec(BaseModel):
    """A manufacturing process: suite time, failure and re-runs, labour and the QC panel.

    Examples
    --------
    >>> spec = load_process("car-t-autologous-manual")
    >>> spec.lots_per_suite
    1
    """

    model_config = _CONFIG

    name: str = Field(min_length=1)
    modality: str = "car-t"
    culture_days: Positive
    changeover_days: NonNegative = Param.fixed(0)
    lots_per_suite: int = Field(1, ge=1)
    failure_rate: Rate = Param.fixed(0)
    max_remanufacture: int = Field(0, ge=0, le=5)
    operating_days_per_year: Positive = Param.fixed(365)
    operator_hours_per_lot: NonNegative = Param.fixed(0)
    qa_hours_per_lot: NonNegative = Param.fixed(0)
    # work that does not scale with lots: per month for the process (QC: raw-material and
    # stability testing, trending, data review; QA: deviations, change control, document
    # control) and per suite in use per month (QC: environmental monitoring; QA: area release
    # and EM review)
    qc_fixed_hours_per_month: NonNegative = Param.fixed(0)
    qc_hours_per_suite_month: NonNegative = Param.fixed(0)
    qa_fixed_hours_per_month: NonNegative = Param.fixed(0)
    qa_hours_per_suite_month: NonNegative = Param.fixed(0)
    productive_hours_per_fte_year: Positive = Param.fixed(1650)
    shifts_per_day: int = Field(1, ge=1, le=4)
    hours_per_shift: Positive = Param.fixed(8)
    min_operators_per_suite_shift: int = Field(0, ge=0)
    qc: list[QCAssay]
    # optional bill of materials per lot ([materials] and [[materials.item]]); see
    # capacity.materials
    materials: Materials = None
    # optional viral vector made in campaigns ([vector]); see capacity.vector
    vector: Vector = None

    @field_validator("qc")
    @classmethod
    def _panel(cls, qc: list[QCAssay]) -> list[QCAssay]:
        if not qc:
            raise ValueError("the QC panel is empty; give at least one [[qc]] assay")
        names = [a.assay for a in qc]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"assay names must be unique, repeated: {', '.join(dupes)}")
        return qc

    @field_validator("operating_days_per_year")
    @classmethod
    def _days(cls, p: Param) -> Param:
        if p.support[1] > 366:
            raise ValueError(f"must be at most 366 days, got {p}")
        return p

    @model_validator(mode="after")
    def _shifts_fit_in_a_day(self) -> ProcessSpec:
        hours = self.hours_per_shift
        # the longest shift a draw can take; a lognormal is unbounded, so its P90 stands in
        longest, what = (
            (hours.args[1], "P90 ") if hours.kind == "lognormal" else (hours.support[1], "")
        )
        if longest * self.shifts_per_day > 24:
            raise ValueError(
                f"hours_per_shift x shifts_per_day must be at most 24 hours a day, got "
                f"{what}{longest:g} h x {self.shifts_per_day} = {longest * self.shifts_per_day:g} h"
            )
        return self

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], source: str = "process") -> ProcessSpec:
        """Validate a parsed TOML/JSON mapping; errors name ``source`` and the field."""
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as exc:
            raise ProcessSpecError(_describe(exc, source, cls)) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready mapping that :meth:`from_mapping` reads back unchanged."""
        return self.model_dump(mode="json", exclude_none=True)

    # --- sampling -----------------------------------------------------------------------
    def sample(self, draws: int, seed: int | np.random.Generator | None = 0) -> xr.Dataset:
        """Draw every uncertain parameter once per draw.

        Returns a Dataset with dims ``draw`` and ``assay``; fixed values are repeated. The
        stream of random numbers depends only on ``seed`` and the process ``name``, so a
        process shared by several programs has the same parameters in a given draw. Every
        field takes one uniform per draw through its inverse CDF, fixed fields included, so a
        process that differs in one field (a sensitivity swing) has the same draws of all
        the others.
        """
        rng = seed if isinstance(seed, np.random.Generator) else stream_rng(seed, self.name)
        data: dict[str, Any] = {}
        for field in type(self).model_fields:
            value = getattr(self, field)
            if isinstance(value, Param):
                data[field] = ("draw", value.sample_per_draw(draws, rng))
        for field in QCAssay.model_fields:
            values = [getattr(a, field) for a in self.qc]
            if values and isinstance(values[0], Param):
                data[f"qc_{field}"] = (
                    ("draw", "assay"),
                    np.stack([v.sample_per_draw(draws, rng) for v in values], axis=1),
                )
        coords = {"draw": np.arange(draws), "assay": [a.assay for a in self.qc]}
        return xr.Dataset(data, coords=coords, attrs={"process": self.name})


def process_templates() -> list[str]:
    """Names of the bundled process templates."""
    root = resources.files("capacity") / "templates"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def load_process(name_or_path: str | Path | Mapping[str, Any] | ProcessSpec) -> ProcessSpec:
    """Load a process from a bundled template name, a TOML file or a mapping.

    Examples
    --------
    >>> load_process("aav-vector").modality
    'aav'
    """
    if isinstance(name_or_path, ProcessSpec):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return ProcessSpec.from_mapping(name_or_path)
    text = str(name_or_path)
    path = Path(text)
    if text in process_templates() and not path.exists():
        resource = resources.files("capacity") / "templates" / f"{text}.toml"
        return _from_toml(resource.read_text(), f"template {text!r}")
    if not path.exists():
        raise ProcessSpecError(
            f"{text}: no such process file, and not a bundled template "
            f"(templates: {', '.join(process_templates())})"
        )
    if path.is_dir():
        raise ProcessSpecError(f"{path}: is a folder; expected a process TOML file")
    try:
        content = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProcessSpecError(f"{path}: cannot read the process file ({exc})") from None
    return _from_toml(content, str(path))


def _from_toml(text: str, source: str) -> ProcessSpec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProcessSpecError(f"{source}: not valid TOML ({exc})") from None
    return ProcessSpec.from_mapping(raw, source)


def _describe(exc: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One message naming the source and every offending field, in words a planner reads."""
    lines = []
    for err in exc.errors():
        loc = _location(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = model if len(err["loc"]) == 1 else QCAssay
            known = ", ".join(parent.model_fields)
            msg = f"unknown field (expected one of: {known})"
        elif kind == "missing":
            msg = "required field is missing"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if kind in ("int_type", "int_parsing", "int_from_float"):
                msg = f"expected a whole number, got {err.get('input')!r}"
        lines.append(f"{source}: field '{loc}': {msg}" if loc else f"{source}: {msg}")
    return lines[0] if len(lines) == 1 else "\n".join([f"{len(lines)} problems:", *lines])


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
