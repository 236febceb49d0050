"""The committed protos/*_pb2* modules match what scripts/gen_protos.py generates now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    generator = _load_generator()
    fresh = generator.generate(tmp_path)  # type: ignore[attr-defined]
    assert fresh, "protoc generated nothing"
    stale = [
        path.name
        for path in fresh
        if not (ROOT / "protos" / path.name).exists()
        or (ROOT / "protos" / path.name).read_bytes() != path.read_bytes()
    ]
    assert not stale, f"regenerate with `python scripts/gen_protos.py`: stale {stale}"
    committed = {p.name for p in (ROOT / "protos").iterdir() if "_pb2" in p.name}
    extra = committed - {p.name for p in fresh}
    assert not extra, f"generated modules without a .proto: {sorted(extra)}"
