"""Large JSON documents encoded in parts (`JsonFragments`, used by the master's `/state`)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mesos_http.operator_http import JsonFragments

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10,
)


def test_placeholders_become_the_arrays_they_stand_for() -> None:
    fragments = JsonFragments()
    document = {"frameworks": [{"id": "a", "tasks": fragments.array([{"id": 1}, {"id": "é"}]),
                                "completed_tasks": fragments.array([])}],
                "name": "state"}
    assert json.loads(fragments.encode(document)) == {
        "frameworks": [{"id": "a", "tasks": [{"id": 1}, {"id": "é"}], "completed_tasks": []}],
        "name": "state"}
    assert "é".encode() in fragments.encode(document)  # UTF-8, as Starlette writes JSON


@given(st.lists(st.lists(_values, max_size=4), max_size=4), st.text(max_size=40))
def test_any_parts_and_any_strings_of_the_document_survive(parts: list[list[object]],
                                                           text: str) -> None:
    fragments = JsonFragments()
    placeholders = [fragments.array(part) for part in parts]
    other = JsonFragments()  # its placeholders are plain strings to `fragments`
    foreign = other.array([1])
    document = {"parts": placeholders, "text": text, "foreign": foreign,
                "look_alike": f"{placeholders[0] if placeholders else 'x'}x"}
    decoded = json.loads(fragments.encode(document))
    assert decoded["parts"] == parts
    assert (decoded["text"], decoded["foreign"]) == (text, foreign)
    assert decoded["look_alike"] == document["look_alike"]
