"""Properties of what the agent reads from registries and image archives (untrusted input).

- any text is an image reference or raises InvalidReference: never another exception; a parsed
  reference printed and parsed again is the same reference;
- any manifest or configuration body parses or raises ImageError: never another exception;
  every descriptor accepted has a sha256 digest and a size of 0 or more;
- any layer tar (paths with `..`, absolute paths, symbolic and hard links, whiteouts, opaque
  markers, members replacing members) unpacks or raises ImageError, and nothing is ever
  written outside the layer's directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from mesos_agent.images.layers import unpack_layer
from mesos_agent.images.manifest import (
    ACCEPTED_MANIFEST_TYPES,
    ImageError,
    ImageIndex,
    parse_config,
    parse_manifest,
)
from mesos_agent.images.reference import InvalidReference, parse_reference

# --- references -------------------------------------------------------------------------

_reference_alphabet = st.sampled_from([*"abz019._-/:@[]ABZ", "sha256:", "localhost",
                                       "docker.io/", "__", "\u00e9"])
reference_like = st.lists(_reference_alphabet, max_size=25).map("".join)
_component = st.from_regex(r"[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,6}){0,2}", fullmatch=True)
_hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
valid_references = st.builds(
    lambda registry, parts, tag, digest: (
        (f"{registry}/" if registry else "") + "/".join(parts)
        + (f":{tag}" if tag else "") + (f"@sha256:{digest}" if digest else "")),
    st.sampled_from(["", "localhost", "localhost:5000", "registry.example:443", "docker.io",
                     "127.0.0.1:5000"]),
    st.lists(_component, min_size=1, max_size=3),
    st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    st.none() | _hex64,
)


@given(reference_like | st.text(max_size=30))
def test_any_text_is_a_reference_or_a_clear_refusal(text: str) -> None:
    try:
        reference = parse_reference(text)
    except InvalidReference as exc:
        assert str(exc)
        return
    assert reference.repository
    assert parse_reference(str(reference)) == reference


@given(valid_references)
def test_valid_references_keep_their_parts(text: str) -> None:
    reference = parse_reference(text)
    assert parse_reference(str(reference)) == reference
    if "@" in text:
        assert reference.digest == text.split("@", 1)[1]
        assert reference.reference == reference.digest
    assert reference.repository.split("/")[-1] == text.split("@")[0].split("/")[-1].split(":")[0]


# --- manifests and configurations ----------------------------------------------------------

_digests = st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "0" * 63, "sha512:" + "b" * 128,
                            "", "sha256:" + "A" * 64])
_keys = st.sampled_from(["mediaType", "schemaVersion", "manifests", "layers", "config",
                         "digest", "size", "platform", "os", "architecture", "variant",
                         "Entrypoint", "Cmd", "Env", "WorkingDir", "User", "rootfs",
                         "diff_ids", "x"])
_scalars = (st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(allow_nan=False)
            | st.text(max_size=8) | _digests | st.sampled_from(ACCEPTED_MANIFEST_TYPES))
documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=30,
)


def _body(document: Any) -> bytes:
    return json.dumps(document).encode()


@given(st.sampled_from((*ACCEPTED_MANIFEST_TYPES, "", "text/plain")),
       documents | st.dictionaries(_keys, documents, max_size=6))
def test_any_manifest_parses_or_is_refused_with_a_reason(media_type: str, document: Any) -> None:
    try:
        parsed = parse_manifest(media_type, _body(document))
    except ImageError as exc:
        assert str(exc)
        return
    descriptors = (parsed.manifests if isinstance(parsed, ImageIndex)
                   else (parsed.config, *parsed.layers))
    for descriptor in descriptors:
        assert descriptor.digest.startswith("sha256:") and len(descriptor.digest) == 71
        assert descriptor.size >= 0


@given(st.binary(max_size=40) | documents.map(_body)
       | st.dictionaries(_keys, documents, max_size=6).map(_body))
def test_any_configuration_parses_or_is_refused_with_a_reason(body: bytes) -> None:
    try:
        config = parse_config(body)
    except ImageError as exc:
        assert str(exc)
        return
    for value in (*config.entrypoint, *config.cmd, *config.env, *config.diff_ids):
        assert isinstance(value, str)


# --- layers --------------------------------------------------------------------------------

_names = st.sampled_from(["a", "d", "d/e", "l", "l/x", "l/.wh.y", "../x", "/abs", "a/../../x",
                          "./d/g", ".wh.a", "d/.wh..wh..opq", ".", "d/"])
_links = st.sampled_from(["../outside", "/", "a", "d", "..", "l/x", "nowhere"])


@st.composite
def members(draw: st.DrawFn) -> tuple[str, str, str]:
    kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "device"]))
    return draw(_names), kind, draw(_links)


def _layer(entries: list[tuple[str, str, str]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            data = b""
            if kind == "file":
                data = name.encode()
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, link
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            else:
                info.type = tarfile.CHRTYPE
            info.size = len(data)
            info.mode = 0o755
            archive.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def _tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(path.relative_to(root)), path.lstat().st_mode)
                  for path in root.rglob("*"))


@given(st.lists(members(), max_size=8))
@example([("l", "symlink", "../outside"), ("l/x", "file", "")])
@example([("l", "symlink", "../outside"), ("l/y", "hardlink", "a"), ("a", "file", "")])
@example([("a", "hardlink", "../outside/keep")])
@example([("../outside/keep", "file", "")])
def test_no_layer_writes_outside_its_directory(entries: list[tuple[str, str, str]]) -> None:
    data = _layer(entries)
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        outside = base / "outside"  # what `..` and symbolic links to `../outside` reach
        outside.mkdir()
        (outside / "keep").write_text("kept")
        before = _tree(base / "outside")
        target = base / "layer"
        target.mkdir()
        blob = base / "blob.tar"
        blob.write_bytes(data)
        try:
            unpack_layer(blob, "", diff_id, target)
        except ImageError as exc:
            assert str(exc)
        assert _tree(outside) == before
        assert (outside / "keep").read_text() == "kept"
        assert sorted(os.listdir(base)) == ["blob.tar", "layer", "outside"]
        for path in target.rglob("*"):
            if not path.is_symlink():
                assert path.resolve().is_relative_to(target.resolve())


@given(st.binary(max_size=64))
def test_a_layer_that_does_not_hash_to_its_diff_id_is_refused(garbage: bytes) -> None:
    data = _layer([("a", "file", "")])
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        blob = base / "blob.tar"
        blob.write_bytes(data + garbage)
        target = base / "layer"
        target.mkdir()
        wrong = "sha256:" + hashlib.sha256(data + garbage + b"!").hexdigest()
        try:
            unpack_layer(blob, "", wrong, target)
        except ImageError as exc:
            assert "diff_id" in str(exc) or "cannot be unpacked" in str(exc)
        else:
            raise AssertionError("a layer with the wrong diff_id was accepted")
