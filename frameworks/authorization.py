"""Who may do what to which app or job (issue 17): the authorization file of Marathon and the
batch framework (`--http_authorization`), and the decision `(user, action, path) -> Decision`.

The file is JSON::

    {"permissive": false,
     "rules": [{"users": ["alice"], "actions": ["view", "create", "update", "delete"],
                "paths": ["/dev"]},
               {"users": ["*"], "actions": ["view"], "paths": ["/"]},
               {"users": ["bob"], "actions": ["delete"], "paths": ["/prod"], "allow": false}]}

A rule matches when its `users` name the user (`"*"`: any authenticated user), its `actions`
hold the action (`"*"`: all four) and one of its `paths` holds the path: a path pattern holds
itself and everything under it, segment by segment (`/dev` holds `/dev` and `/dev/api`, never
`/devil`); `/` holds everything. A trailing `/**` or `/*` is accepted and means the same. The
first matching rule decides (`"allow"`, default true); when none matches, `permissive` does
(default false). An anonymous caller (None) matches no rule. Batch job ids map to paths by their
dots: job `dev.backup` is `/dev/backup`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from mesos_security.acls import Decision

__all__ = [
    "ACTIONS",
    "ANY",
    "Action",
    "Authorization",
    "Decision",  # mesos_security.acls.Decision, the one outcome type of every authorizer
    "Rule",
    "job_path",
    "normalize_path",
    "parse_authorization",
    "path_holds",
]

Action = Literal["view", "create", "update", "delete"]
ACTIONS: Final[tuple[Action, ...]] = ("view", "create", "update", "delete")
ANY: Final = "*"


def normalize_path(path: str) -> str:
    """`path` as `/a/b`: one leading slash, no empty segments, no trailing slash."""
    segments = [s for s in path.split("/") if s]
    return "/" + "/".join(segments)


def path_holds(pattern: str, path: str) -> bool:
    """Whether `pattern` (normalized) holds `path`: the path itself or under it, by whole
    segments."""
    path = normalize_path(path)
    return pattern == "/" or path == pattern or path.startswith(pattern + "/")


def job_path(job_id: str) -> str:
    """The path a batch job id stands for in rules: `dev.backup` -> `/dev/backup`."""
    return normalize_path(job_id.replace(".", "/"))


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of the file; `number` is its position (from 1), for reasons."""

    number: int
    users: frozenset[str]
    actions: frozenset[Action]
    paths: tuple[str, ...]
    allow: bool = True

    def matches(self, user: str | None, action: Action, path: str) -> bool:
        """Whether this rule speaks for `user` doing `action` on `path`."""
        return (user is not None and (ANY in self.users or user in self.users)
                and action in self.actions
                and any(path_holds(pattern, path) for pattern in self.paths))


@dataclass(frozen=True, slots=True)
class Authorization:
    """The rules; the default (no rules, permissive) allows everything."""

    rules: tuple[Rule, ...] = ()
    permissive: bool = True

    @property
    def enabled(self) -> bool:
        """Whether anything can be refused."""
        return bool(self.rules) or not self.permissive

    def decide(self, user: str | None, action: Action, path: str) -> Decision:
        """The decision for `user` (None: anonymous) doing `action` on `path`."""
        path = normalize_path(path)
        who = "anonymous" if user is None else f"user '{user}'"
        for rule in self.rules:
            if rule.matches(user, action, path):
                verb = "allows" if rule.allow else "denies"
                return Decision(rule.allow, f"rule {rule.number} {verb} {who} to {action} "
                                            f"'{path}'")
        if self.permissive:
            return Decision(True, f"no rule matches {who} to {action} '{path}' "
                                  "(permissive)")
        return Decision(False, f"no rule allows {who} to {action} '{path}'")

    def first_refusal(self, user: str | None,
                      wanted: Iterable[tuple[Action, str]]) -> Decision | None:
        """The first refused of `wanted` (action, path) pairs, or None when all are allowed."""
        for action, path in wanted:
            decision = self.decide(user, action, path)
            if not decision.allowed:
                return decision
        return None

    def may_view(self, user: str | None, path: str) -> bool:
        """Whether `user` may view `path` (for filtering lists)."""
        return self.decide(user, "view", path).allowed


def parse_authorization(text: str) -> Authorization:
    """The authorization file; ValueError naming the first problem otherwise."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError('must be an object: {"permissive": ..., "rules": [...]}')
    unknown = set(document) - {"permissive", "rules"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    permissive = document.get("permissive", False)
    if not isinstance(permissive, bool):
        raise ValueError("'permissive' must be true or false")
    entries = document.get("rules", [])
    if not isinstance(entries, list):
        raise ValueError("'rules' must be a list")
    return Authorization(tuple(_rule(i + 1, e) for i, e in enumerate(entries)), permissive)


def _strings(number: int, entry: dict[str, Any], key: str) -> Sequence[str]:
    value = entry.get(key)
    if not isinstance(value, list) or not value \
            or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"rule {number}: '{key}' must be a non-empty list of non-empty strings")
    return value


def _rule(number: int, entry: Any) -> Rule:
    if not isinstance(entry, dict):
        raise ValueError(f"rule {number} must be an object")
    unknown = set(entry) - {"users", "actions", "paths", "allow"}
    if unknown:
        raise ValueError(f"rule {number}: unknown field(s): {', '.join(sorted(unknown))}")
    users = frozenset(_strings(number, entry, "users"))
    named = _strings(number, entry, "actions")
    actions: set[Action] = set()
    for name in named:
        if name == ANY:
            actions.update(ACTIONS)
        elif name in ACTIONS:
            actions.add(name)
        else:
            raise ValueError(f"rule {number}: unknown action {name!r} (view, create, update, "
                             "delete or *)")
    paths = []
    for raw in _strings(number, entry, "paths"):
        if not raw.startswith("/") and raw not in (ANY, "**"):
            raise ValueError(f"rule {number}: path {raw!r} must start with '/'")
        trimmed = raw.removesuffix("/**").removesuffix("/*")
        if raw in (ANY, "**"):
            trimmed = "/"
        if "*" in trimmed:
            raise ValueError(f"rule {number}: path {raw!r}: '*' only as a last segment '/**'")
        paths.append(normalize_path(trimmed))
    allow = entry.get("allow", True)
    if not isinstance(allow, bool):
        raise ValueError(f"rule {number}: 'allow' must be true or false")
    return Rule(number, users, frozenset(actions), tuple(paths), allow)
