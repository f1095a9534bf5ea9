"""The README's spec reference is generated from the models; it must not drift from them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from ecs_canary.spec import spec_json_schema

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("spec_reference", ROOT / "scripts" / "spec_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_reference_in_readme_is_current() -> None:
    generator = _generator()
    text = (ROOT / "README.md").read_text()
    assert generator.updated_readme(text) == text, "run: python scripts/spec_reference.py --write"


def _property_names(node: object) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names.update(value)
            names |= _property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _property_names(item)
    return names


def test_every_spec_field_is_documented() -> None:
    text = (ROOT / "README.md").read_text()
    missing = sorted(name for name in _property_names(spec_json_schema()) if f"{name}`" not in text)
    assert not missing, f"fields missing from the README's spec reference: {missing}"


def test_readme_names_both_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text
    assert "make test" in text
