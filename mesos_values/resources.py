"""Resources: an immutable bag of named scalars, port-style ranges and sets, with Mesos' arithmetic.

Text form (as on `mesos-agent --resources`)::

    cpus:4;mem:4096;disk:10000;ports:[31000-32000,33000-33010];gpus:1;zones:{a,b}

or a JSON list of Mesos resource objects::

    [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}},
     {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}}]

Scalars are fixed-point with three decimals, like Mesos, so `0.1 + 0.2 == 0.3` holds. Ranges are
inclusive and kept sorted and merged.

Reservations: `cpus(ads):8` is 8 cpus statically reserved for role `ads`; in protobuf and JSON a
resource's `reservations` stack (most refined last; the legacy `role` field as a static one).
Resources with different reservations are different resources: arithmetic and `contains` keep
them apart (internally the key is the name plus its encoded stack), while the quantity views —
`scalar()`, `scalars`, `ranges_of()`, `set_of()`, `names()`, `scalar_quantities()` — count every
reservation under the plain name. `covering()` finds reserved or unreserved resources that
satisfy a plain request; `allocatable_to(role)` keeps what a role may be offered.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from mesos_values.ranges import (
    RANGE_ITEM,
    Range,
    intersect_ranges,
    merge_ranges,
    ranges_contain,
    split_top_level,
    subtract_ranges,
)
from mesos_values.reservations import (
    KEY_SEPARATOR,
    Reservation,
    ReservationStack,
    is_reserved_key,
    key_label,
    key_parts,
    reserved_within,
    resource_key,
)
from protos import mesos_pb2

__all__ = ["MAX_SCALAR", "Reservation", "ReservationStack", "Resources", "format_scalar"]


_NAME = re.compile(r"[A-Za-z0-9_./\-]+")
_DECIMAL = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                      r"|(?i:inf|infinity|nan))")
"""A scalar of the text form (infinities and NaN only to be refused as non-finite)."""
_NO_SCALARS: dict[str, float] = {}
_NO_RANGES: dict[str, tuple[Range, ...]] = {}
_NO_SETS: dict[str, frozenset[str]] = {}


MAX_RANGE_BOUND = 2**64 - 1
"""The largest bound of a range: Mesos keeps them as uint64."""

MAX_SCALAR = 1e15
"""The largest scalar a resource may have: Mesos keeps scalars as 64-bit integers of
thousandths (at most about 9.2e15); 1e15 leaves room for sums."""


def _fixed(value: float) -> float:
    """Round to Mesos' fixed-point precision (0.001)."""
    return round(value * 1000) / 1000


def _plain_name(name: str) -> str:
    """`name` when it is a valid resource name (no reservation, no separator); else ValueError."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid resource name {name!r}: expected letters, digits and "
                         "'_', '.', '/' or '-'")
    return name


def format_scalar(value: float) -> str:
    """A scalar in Mesos' text form: `4`, `0.5`, `1.125`."""
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


class _Builder:
    """Accumulates parsed resources, checking that a name keeps one type."""

    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}
        self.ranges: dict[str, list[Range]] = {}
        self.sets: dict[str, set[str]] = {}

    def _check_name(self, name: str, kind: str) -> None:
        base = name.partition(KEY_SEPARATOR)[0]
        if not _NAME.fullmatch(base):
            raise ValueError(f"invalid resource name {base!r}")
        for other_kind, table in (("scalar", self.scalars), ("ranges", self.ranges),
                                  ("set", self.sets)):
            if other_kind != kind and name in table:
                raise ValueError(
                    f"resource {name!r} given both as {other_kind} and as {kind}"
                )

    def scalar(self, name: str, value: float) -> None:
        self._check_name(name, "scalar")
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"resource {name!r} has a non-finite value {value}")
        if value < 0:
            raise ValueError(f"resource {name!r} has a negative value {format_scalar(value)}")
        total = self.scalars.get(name, 0.0) + value
        if total > MAX_SCALAR:
            raise ValueError(f"resource {name!r} has a value {total:g} over the largest "
                             f"allowed, {MAX_SCALAR:g}")
        self.scalars[name] = _fixed(total)

    def range(self, name: str, begin: int, end: int) -> None:
        self._check_name(name, "ranges")
        if begin < 0 or end < 0:
            raise ValueError(f"resource {name!r} has a negative range bound in [{begin}-{end}]")
        if begin > end:
            raise ValueError(f"resource {name!r} has a malformed range [{begin}-{end}]: "
                             "begin is greater than end")
        if end > MAX_RANGE_BOUND:
            raise ValueError(f"resource {name!r} has a range bound {end} over the largest "
                             f"allowed, {MAX_RANGE_BOUND}")
        self.ranges.setdefault(name, []).append((begin, end))

    def no_ranges(self, name: str) -> None:
        self._check_name(name, "ranges")
        self.ranges.setdefault(name, [])

    def items(self, name: str, items: Iterable[str]) -> None:
        self._check_name(name, "set")
        bucket = self.sets.setdefault(name, set())
        for item in items:
            if not item:
                raise ValueError(f"resource {name!r} has an empty set item")
            bucket.add(item)

    def build(self) -> Resources:
        scalars = {name: value for name, value in self.scalars.items() if value > 0}
        ranges = {name: merge_ranges(rs) for name, rs in self.ranges.items() if rs}
        sets = {name: frozenset(items) for name, items in self.sets.items() if items}
        built = Resources(scalars or _NO_SCALARS, ranges or _NO_RANGES, sets or _NO_SETS)
        built.reserved  # noqa: B018 -- computed once here, then carried through arithmetic
        return built


def _parse_text(text: str) -> Resources:
    builder = _Builder()
    for raw in split_top_level(text, ";"):
        entry = raw.strip()
        if not entry:
            continue
        name, colon, value = entry.partition(":")
        name, value = name.strip(), value.strip()
        if not colon:
            raise ValueError(f"expected 'name:value' in resources, got {entry!r}")
        name = _static_key(name, entry)
        if value.startswith("["):
            if not value.endswith("]"):
                raise ValueError(f"malformed ranges for {name!r}: {value!r}")
            inner = value[1:-1].strip()
            if not inner:
                builder.no_ranges(name)
            for item in inner.split(",") if inner else ():
                match = RANGE_ITEM.match(item.strip())
                if not match:
                    raise ValueError(
                        f"malformed range {item.strip()!r} for {name!r}: expected BEGIN-END"
                    )
                begin = int(match.group(1))
                end = int(match.group(2)) if match.group(2) is not None else begin
                builder.range(name, begin, end)
        elif value.startswith("{"):
            if not value.endswith("}"):
                raise ValueError(f"malformed set for {name!r}: {value!r}")
            inner = value[1:-1].strip()
            builder.items(name, (item.strip() for item in inner.split(",")) if inner else ())
        else:
            try:
                if not _DECIMAL.fullmatch(value):  # float() also takes "1_0" and other digits
                    raise ValueError(value)
                number = float(value)
            except ValueError:
                raise ValueError(
                    f"cannot parse value {value!r} of resource {name!r}: expected a number, "
                    "[BEGIN-END,...] or {ITEM,...}"
                ) from None
            builder.scalar(name, number)
    return builder.build()


_STATIC = re.compile(r"^([^()]+)\(([^()]*)\)$")


def _static_key(name: str, entry: str) -> str:
    """`cpus` -> `cpus`; `cpus(ads)` -> the key of cpus statically reserved for `ads`."""
    if "(" not in name and ")" not in name:
        return _plain_name(name)
    match = _STATIC.match(name)
    if not match:
        raise ValueError(f"malformed reservation in {entry!r}: expected NAME(ROLE):VALUE")
    base, role = match.group(1).strip(), match.group(2).strip()
    if not role:
        raise ValueError(f"empty role in {entry!r}")
    _plain_name(base)
    return base if role == "*" else resource_key(base, (Reservation(role),))


def _json_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number for {where}, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{where} is a number beyond the range of a double") from None


_DIGITS = re.compile(r"[0-9]{1,20}")


def _json_uint64(value: Any, where: str) -> int:
    """A range bound: a JSON integer, or a string of digits as the protobuf JSON mapping
    writes 64-bit integers (`MessageToDict` also leaves out a bound of 0, read as 0)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer for {where}, got {value!r}")
    return value


def _json_stack(item: Mapping[str, Any], name: str) -> ReservationStack:
    """The reservation stack of a JSON resource object (`reservations`, or a legacy `role`)."""
    reservations = item.get("reservations")
    if reservations:
        if not isinstance(reservations, list):
            raise ValueError(f"'reservations' of resource {name!r} must be a list")
        stack = []
        for entry in reservations:
            if not isinstance(entry, dict) or not isinstance(entry.get("role"), str):
                raise ValueError(f"reservation of resource {name!r} needs a string 'role'")
            labels = entry.get("labels", {}).get("labels", []) if isinstance(
                entry.get("labels"), dict) else []
            stack.append(Reservation(
                role=entry["role"],
                dynamic=str(entry.get("type", "STATIC")).upper() == "DYNAMIC",
                principal=str(entry.get("principal", "")),
                labels=tuple((str(label.get("key", "")), str(label.get("value", "")))
                             for label in labels if isinstance(label, dict)),
            ))
        return tuple(stack)
    role = item.get("role", "*")
    if not isinstance(role, str):
        raise ValueError(f"'role' of resource {name!r} must be a string")
    return () if role in ("", "*") else (Reservation(role),)


def _parse_json(text: str) -> Resources:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"resources look like JSON but do not parse: {error}") from None
    if not isinstance(document, list):
        raise ValueError("JSON resources must be a list of resource objects")
    builder = _Builder()
    for item in document:
        if not isinstance(item, dict):
            raise ValueError(f"expected a resource object, got {item!r}")
        name = item.get("name")
        if not isinstance(name, str):
            raise ValueError(f"resource object without a string 'name': {item!r}")
        name = resource_key(_plain_name(name), _json_stack(item, name))
        kind = str(item.get("type") or _infer_json_type(item)).upper()
        if kind == "SCALAR":
            scalar = item.get("scalar")
            if not isinstance(scalar, dict):
                raise ValueError(f"SCALAR resource {name!r} needs 'scalar': {{'value': N}}")
            builder.scalar(name, _json_number(scalar.get("value"), f"{name}.scalar.value"))
        elif kind == "RANGES":
            ranges = item.get("ranges")
            entries = ranges.get("range", []) if isinstance(ranges, dict) else None
            if not isinstance(entries, list):
                raise ValueError(f"RANGES resource {name!r} needs 'ranges': {{'range': [...]}}")
            builder.no_ranges(name)
            for entry in entries:
                if not isinstance(entry, dict):
                    raise ValueError(f"malformed range {entry!r} for {name!r}")
                builder.range(name, _json_uint64(entry.get("begin"), f"{name} range begin"),
                              _json_uint64(entry.get("end"), f"{name} range end"))
        elif kind == "SET":
            items = item.get("set")
            values = items.get("item", []) if isinstance(items, dict) else None
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"SET resource {name!r} needs 'set': {{'item': [strings]}}")
            builder.items(name, values)
        else:
            raise ValueError(f"resource {name!r} has unknown type {kind!r}")
    return builder.build()


def _infer_json_type(item: Mapping[str, Any]) -> str:
    for key, kind in (("scalar", "SCALAR"), ("ranges", "RANGES"), ("set", "SET")):
        if key in item:
            return kind
    raise ValueError(f"resource object {item.get('name')!r} has no type and no value")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Resources:
    """An immutable set of resources keyed by name and reservation.

    Build one with `Resources.parse`, `Resources.from_proto` or arithmetic on existing values;
    the constructor takes already-normalised internal tables and is not public API.
    """

    _scalars: dict[str, float]
    _ranges: dict[str, tuple[Range, ...]]
    _sets: dict[str, frozenset[str]]
    _has_reserved: bool | None = field(default=None, init=False)  # computed on first use
    _hash: int | None = field(default=None, init=False)  # computed on first use
    _quantities: Resources | None = field(default=None, init=False)  # computed on first use

    EMPTY: ClassVar[Resources]

    @classmethod
    def parse(cls, text: str) -> Resources:
        """Parse Mesos' text form or a JSON list of resource objects; ValueError on bad input."""
        stripped = text.strip()
        if stripped.startswith("["):
            return _parse_json(stripped)
        return _parse_text(stripped)

    @classmethod
    def from_proto_shared(cls, resources: Iterable[mesos_pb2.Resource]) -> Resources:
        """`from_proto`, one (immutable) value shared by every list of the same encoded
        messages: the tasks of a burst mostly ask for the same, and parsing costs more than
        encoding the key. ValueError as `from_proto` raises it (not remembered)."""
        return _parsed_shared(tuple(r.SerializeToString(deterministic=True) for r in resources))

    @classmethod
    def from_proto(cls, resources: Iterable[mesos_pb2.Resource]) -> Resources:
        """Build from `mesos_pb2.Resource` messages (same-named entries are added up)."""
        builder = _Builder()
        for resource in resources:
            if resource.reservations:
                stack = tuple(Reservation.from_proto(r) for r in resource.reservations)
            elif resource.role not in ("", "*"):
                stack = (Reservation(resource.role),)
            else:
                stack = ()
            name = resource_key(_plain_name(resource.name), stack)
            if resource.type == mesos_pb2.Value.SCALAR:
                builder.scalar(name, resource.scalar.value)
            elif resource.type == mesos_pb2.Value.RANGES:
                builder.no_ranges(name)
                for entry in resource.ranges.range:
                    builder.range(name, entry.begin, entry.end)
            elif resource.type == mesos_pb2.Value.SET:
                builder.items(name, resource.set.item)
            else:
                raise ValueError(f"resource {resource.name!r} has unsupported type "
                                 f"{mesos_pb2.Value.Type.Name(resource.type)}")
        return builder.build()

    @classmethod
    def from_scalars(cls, scalars: Mapping[str, float]) -> Resources:
        """Build from a mapping of scalar quantities, e.g. `{"cpus": 1, "mem": 128}`."""
        builder = _Builder()
        for name, value in scalars.items():
            builder.scalar(_plain_name(name), value)
        return builder.build()

    @classmethod
    def sum_of(cls, start: Resources, more: Iterable[Resources]) -> Resources:
        """`start + a + b + ...` for `more` = a, b, ...: the value adding them one by one gives
        (rounded at each step alike), without the bags in between when all are scalars only."""
        parts = more if isinstance(more, list | tuple) else list(more)
        if start._ranges or start._sets or any(part._ranges or part._sets for part in parts):
            total = start
            for part in parts:
                total = total + part
            return total
        scalars, owned, last = start._scalars, False, start
        for part in parts:
            if not part._scalars:
                continue
            if not scalars:  # (`+` gives the other bag)
                scalars, owned, last = part._scalars, False, part
                continue
            if not owned:
                scalars, owned = scalars.copy(), True
            for name, value in part._scalars.items():
                scalars[name] = round((scalars.get(name, 0.0) + value) * 1000) / 1000
        return Resources(scalars, _NO_RANGES, _NO_SETS) if owned else last

    def to_proto(self) -> list[mesos_pb2.Resource]:
        """The `mesos_pb2.Resource` messages for these resources (with their reservations)."""
        messages: list[mesos_pb2.Resource] = []
        if not self.reserved:
            for name, value in self._scalars.items():
                scalar = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SCALAR, role="*")
                scalar.scalar.value = value
                messages.append(scalar)
            for name, ranges in self._ranges.items():
                ranged = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.RANGES, role="*")
                for begin, end in ranges:
                    ranged.ranges.range.add(begin=begin, end=end)
                messages.append(ranged)
            for name, items in self._sets.items():
                member = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SET, role="*")
                member.set.item.extend(sorted(items))
                messages.append(member)
            return messages

        def message(key: str, kind: mesos_pb2.Value.Type.ValueType) -> mesos_pb2.Resource:
            name, stack = key_parts(key)
            resource = mesos_pb2.Resource(
                name=name, type=kind, role=stack[-1].role if stack else "*"
            )
            resource.reservations.extend(r.to_proto() for r in stack)
            messages.append(resource)
            return resource

        for key, value in self._scalars.items():
            message(key, mesos_pb2.Value.SCALAR).scalar.value = value
        for key, ranges in self._ranges.items():
            entry = message(key, mesos_pb2.Value.RANGES)
            for begin, end in ranges:
                entry.ranges.range.add(begin=begin, end=end)
        for key, items in self._sets.items():
            message(key, mesos_pb2.Value.SET).set.item.extend(sorted(items))
        return messages

    @property
    def reserved(self) -> bool:
        """Whether any of these resources is reserved."""
        known = self._has_reserved
        if known is None:
            known = any(KEY_SEPARATOR in key for table in (self._scalars, self._ranges, self._sets)
                        for key in table)
            object.__setattr__(self, "_has_reserved", known)
        return known

    @property
    def scalars(self) -> Mapping[str, float]:
        """Scalar quantities by name, reservations included (read-only)."""
        if not self.reserved:
            return MappingProxyType(self._scalars)
        return MappingProxyType(self.scalar_quantities()._scalars)

    def scalar(self, name: str) -> float:
        """The quantity of scalar `name`, reservations included; 0.0 if absent."""
        value = self._scalars.get(name, 0.0)
        if not self.reserved:
            return value
        if len(self._scalars) > 1 or value == 0.0:
            for key, amount in self._scalars.items():
                if KEY_SEPARATOR in key and key_parts(key)[0] == name:
                    value = _fixed(value + amount)
        return value

    def ranges_of(self, name: str) -> tuple[Range, ...]:
        """The inclusive ranges of `name`, reservations included (sorted, merged)."""
        own = self._ranges.get(name, ())
        extra = [r for key, ranges in self._ranges.items()
                 if KEY_SEPARATOR in key and key_parts(key)[0] == name for r in ranges]
        return merge_ranges(own + tuple(extra)) if extra else own

    def set_of(self, name: str) -> frozenset[str]:
        """The items of set resource `name`, reservations included."""
        items = self._sets.get(name, frozenset())
        for key, more in self._sets.items():
            if KEY_SEPARATOR in key and key_parts(key)[0] == name:
                items = items | more
        return items

    def names(self) -> frozenset[str]:
        """Names of all resources present (without their reservations)."""
        tables = (self._scalars, self._ranges, self._sets)
        return frozenset(key_parts(key)[0] for table in tables for key in table)

    def scalar_quantities(self) -> Resources:
        """Only the scalar part, reservations merged into plain names (what shares and quotas
        count)."""
        cached = self._quantities
        if cached is not None:
            return cached
        if self.reserved and any(KEY_SEPARATOR in key for key in self._scalars):
            merged: dict[str, float] = {}
            for key, value in self._scalars.items():
                name = key_parts(key)[0]
                merged[name] = _fixed(merged.get(name, 0.0) + value)
            quantities = Resources(merged, _NO_RANGES, _NO_SETS)
        elif not self._ranges and not self._sets:
            return self
        else:
            quantities = Resources(self._scalars or _NO_SCALARS, _NO_RANGES, _NO_SETS)
        object.__setattr__(quantities, "_has_reserved", False)
        object.__setattr__(self, "_quantities", quantities)
        return quantities

    def max_share(self, total: Resources, excluded: frozenset[str] = frozenset()) -> float:
        """The largest fraction of `total` any of these scalars is (reservations counted under
        their names; names in `excluded`, or absent from `total`, are left out)."""
        mine = self.scalar_quantities()._scalars
        whole = total.scalar_quantities()._scalars
        share = 0.0
        for name, value in mine.items():
            available = whole.get(name)
            if available and name not in excluded:
                fraction = value / available
                if fraction > share:
                    share = fraction
        return share

    def unreserved(self) -> Resources:
        """Only the resources without a reservation."""
        if not self.reserved:
            return self
        return self._filter(lambda key: KEY_SEPARATOR not in key)

    def allocatable_to(self, role: str) -> Resources:
        """What may be offered to `role`: unreserved resources and those reserved (at their
        most refined level) for `role` or one of its ancestors."""
        if not self.reserved:
            return self
        return self._filter(
            lambda key: KEY_SEPARATOR not in key
            or reserved_within(key_parts(key)[1][-1].role, role)
        )

    def reserved_for(self, role: str) -> Resources:
        """Only the resources whose most refined reservation is for exactly `role`."""
        return self._filter(
            lambda key: KEY_SEPARATOR in key and key_parts(key)[1][-1].role == role
        )

    def reservation_roles(self) -> frozenset[str]:
        """The roles these resources are reserved for (most refined level)."""
        return frozenset(key_parts(key)[1][-1].role
                         for table in (self._scalars, self._ranges, self._sets)
                         for key in table if KEY_SEPARATOR in key)

    def pushed(self, reservation: Reservation) -> Resources:
        """These resources with `reservation` added on top of each one's stack (RESERVE)."""
        return self._rekey(lambda stack: (*stack, reservation))

    def popped(self) -> Resources:
        """These resources with the most refined reservation of each removed (UNRESERVE);
        ValueError if some are not reserved."""
        def pop(stack: ReservationStack) -> ReservationStack:
            if not stack:
                raise ValueError("cannot unreserve unreserved resources")
            return stack[:-1]

        return self._rekey(pop)

    def without_dynamic(self) -> Resources:
        """These resources with every dynamic reservation on top of each stack removed: what
        they were before RESERVE operations (static reservations stay)."""
        def strip(stack: ReservationStack) -> ReservationStack:
            while stack and stack[-1].dynamic:
                stack = stack[:-1]
            return stack

        return self._rekey(strip)

    def dynamically_reserved(self) -> Resources:
        """Only the resources whose most refined reservation is dynamic."""
        return self._filter(lambda key: KEY_SEPARATOR in key and key_parts(key)[1][-1].dynamic)

    def stacks(self) -> frozenset[ReservationStack]:
        """Every reservation stack present (the empty one for unreserved resources)."""
        tables = (self._scalars, self._ranges, self._sets)
        return frozenset(key_parts(key)[1] for table in tables for key in table)

    def covering(self, wanted: Resources) -> Resources | None:
        """Resources of this bag that satisfy `wanted` when reservations are ignored:
        unreserved first, then reserved ones; None when they are not there. Resources that
        `wanted` names with a reservation must be present with exactly that reservation."""
        if self.contains(wanted):
            return wanted
        exact = wanted._filter(is_reserved_key)
        if not self.contains(exact):
            return None
        pool = self - exact
        picked = exact
        for name, amount in wanted.unreserved()._scalars.items():
            for key in sorted(pool._scalars, key=is_reserved_key):
                if key_parts(key)[0] != name or amount <= 0:
                    continue
                take = min(amount, pool._scalars[key])
                part = Resources({key: _fixed(take)}, _NO_RANGES, _NO_SETS)
                picked, pool, amount = picked + part, pool - part, _fixed(amount - take)
            if amount > 0:
                return None
        for name, ranges in wanted.unreserved()._ranges.items():
            left = ranges
            for key in sorted(pool._ranges, key=is_reserved_key):
                if key_parts(key)[0] != name or not left:
                    continue
                inside = intersect_ranges(pool._ranges[key], left)
                if inside:
                    part = Resources(_NO_SCALARS, {key: inside}, _NO_SETS)
                    picked, pool = picked + part, pool - part
                    left = subtract_ranges(left, inside)
            if left:
                return None
        for name, items in wanted.unreserved()._sets.items():
            needed = set(items)
            for key in sorted(pool._sets, key=is_reserved_key):
                if key_parts(key)[0] != name or not needed:
                    continue
                common = frozenset(needed & pool._sets[key])
                if common:
                    part = Resources(_NO_SCALARS, _NO_RANGES, {key: common})
                    picked, pool = picked + part, pool - part
                    needed -= common
            if needed:
                return None
        return picked

    def _filter(self, keep: Callable[[str], bool]) -> Resources:
        return Resources(
            {k: v for k, v in self._scalars.items() if keep(k)} or _NO_SCALARS,
            {k: v for k, v in self._ranges.items() if keep(k)} or _NO_RANGES,
            {k: v for k, v in self._sets.items() if keep(k)} or _NO_SETS,
        )

    def _rekey(self, change: Callable[[ReservationStack], ReservationStack]) -> Resources:
        def moved(key: str) -> str:
            name, stack = key_parts(key)
            return resource_key(name, change(stack))

        result = Resources.EMPTY
        for key, value in self._scalars.items():
            result = result + Resources({moved(key): value}, _NO_RANGES, _NO_SETS)
        for key, ranges in self._ranges.items():
            result = result + Resources(_NO_SCALARS, {moved(key): ranges}, _NO_SETS)
        for key, items in self._sets.items():
            result = result + Resources(_NO_SCALARS, _NO_RANGES, {moved(key): items})
        return result

    def capped(self, limits: Mapping[str, float]) -> Resources:
        """These resources with each scalar named in `limits` cut down to at most its limit
        (a limit <= 0 removes the scalar); other resources are kept whole."""
        scalars = dict(self._scalars)
        changed = False
        for name, limit in limits.items():
            value = scalars.get(name)
            if value is None or value <= limit:
                continue
            changed = True
            limit = _fixed(limit)
            if limit > 0:
                scalars[name] = limit
            else:
                del scalars[name]
        if not changed:
            return self
        return Resources(scalars or _NO_SCALARS, self._ranges or _NO_RANGES,
                         self._sets or _NO_SETS)

    def is_empty(self) -> bool:
        """Whether there is nothing here."""
        return not (self._scalars or self._ranges or self._sets)

    def __bool__(self) -> bool:
        return not self.is_empty()

    def contains(self, other: Resources) -> bool:
        """Whether `other` is a sub-bag of these resources."""
        mine = self._scalars
        for name, value in other._scalars.items():
            if mine.get(name, 0.0) < value:
                return False
        if other._ranges:
            for name, ranges in other._ranges.items():
                if not ranges_contain(self._ranges.get(name, ()), ranges):
                    return False
        if other._sets:
            for name, items in other._sets.items():
                if not items <= self._sets.get(name, frozenset()):
                    return False
        return True

    def __add__(self, other: Resources) -> Resources:
        if not (other._scalars or other._ranges or other._sets):
            return self
        if not (self._scalars or self._ranges or self._sets):
            return other
        if not other._scalars:
            scalars = self._scalars
        elif not self._scalars:
            scalars = other._scalars
        else:
            scalars = self._scalars.copy()
            for name, value in other._scalars.items():
                scalars[name] = round((scalars.get(name, 0.0) + value) * 1000) / 1000
        ranges = self._ranges
        if other._ranges:
            if ranges:
                ranges = ranges.copy()
                for name, extra in other._ranges.items():
                    present = ranges.get(name)
                    ranges[name] = merge_ranges(present + extra) if present else extra
            else:
                ranges = other._ranges
        sets = self._sets
        if other._sets:
            if sets:
                sets = sets.copy()
                for name, items in other._sets.items():
                    sets[name] = sets.get(name, frozenset()) | items
            else:
                sets = other._sets
        if ranges or sets:
            _check_types(scalars, ranges, sets)
        result = Resources(scalars, ranges, sets)
        if self._has_reserved is False and other._has_reserved is False:
            object.__setattr__(result, "_has_reserved", False)
        return result

    def __sub__(self, other: Resources) -> Resources:
        if not self.contains(other):
            raise ValueError(f"cannot subtract {other} from {self}: not contained")
        scalars = self._scalars
        if other._scalars:
            scalars = scalars.copy()
            for name, value in other._scalars.items():
                left = round((scalars[name] - value) * 1000) / 1000
                if left > 0:
                    scalars[name] = left
                else:
                    del scalars[name]
        ranges = self._ranges
        if other._ranges:
            ranges = ranges.copy()
            for name, holes in other._ranges.items():
                left_ranges = subtract_ranges(ranges[name], holes)
                if left_ranges:
                    ranges[name] = left_ranges
                else:
                    del ranges[name]
        sets = self._sets
        if other._sets:
            sets = sets.copy()
            for name, items in other._sets.items():
                left_items = sets[name] - items
                if left_items:
                    sets[name] = left_items
                else:
                    del sets[name]
        result = Resources(scalars, ranges, sets)
        if self._has_reserved is False:
            object.__setattr__(result, "_has_reserved", False)
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return (self._scalars == other._scalars and self._ranges == other._ranges
                and self._sets == other._sets)

    def __hash__(self) -> int:
        known = self._hash
        if known is None:
            known = hash((frozenset(self._scalars.items()), frozenset(self._ranges.items()),
                          frozenset(self._sets.items())))
            object.__setattr__(self, "_hash", known)
        return known

    def __str__(self) -> str:
        parts = [f"{key_label(key)}:{format_scalar(value)}" for key, value in self._scalars.items()]
        parts += [
            f"{key_label(key)}:[{','.join(f'{b}-{e}' for b, e in ranges)}]"
            for key, ranges in self._ranges.items()
        ]
        parts += [f"{key_label(key)}:{{{','.join(sorted(items))}}}"
                  for key, items in self._sets.items()]
        return ";".join(parts)

    def __repr__(self) -> str:
        return f"Resources.parse({str(self)!r})"


def _check_types(scalars: Mapping[str, float], ranges: Mapping[str, tuple[Range, ...]],
                 sets: Mapping[str, frozenset[str]]) -> None:
    clash = (scalars.keys() & ranges.keys()) | (scalars.keys() & sets.keys()) | (
        ranges.keys() & sets.keys())
    if clash:
        raise ValueError(f"resources {sorted(clash)} are used with different types")


Resources.EMPTY = Resources(_NO_SCALARS, _NO_RANGES, _NO_SETS)
object.__setattr__(Resources.EMPTY, "_has_reserved", False)


@functools.lru_cache(maxsize=1024)
def _parsed_shared(encoded: tuple[bytes, ...]) -> Resources:
    return Resources.from_proto([mesos_pb2.Resource.FromString(r) for r in encoded])
