"""Official provider contracts from ../shared/specs, applied to what the emulators receive
and send, with the helpers that adapt a spec where a validator would misread it.

When ../shared is absent (a user's clone) the checks are skipped and the reason printed
once; the behaviour tests still run.
"""
from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from openapi_schema_validator import OAS30Validator, OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPECS_DIR = Path(__file__).resolve().parents[3] / "shared" / "specs"


class _Yaml12Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML 1.2 reading of the specs: OFF/ON/yes/no and dates stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers
          if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def specs_available() -> bool:
    return SPECS_DIR.is_dir()


# For tests about the contracts themselves (a canary that the contract rejects a bad body).
needs_specs = pytest.mark.skipif(not specs_available(),
                                 reason=f"{SPECS_DIR} is absent: nothing to check against")


@functools.cache
def _announce_missing() -> None:
    print(f"\n[contracts] {SPECS_DIR} is absent: provider contract checks are skipped "
          f"(behaviour tests still run).", file=sys.stderr)


@functools.cache
def load_spec(relative: str) -> dict:
    path = SPECS_DIR / relative
    with open(path, encoding="utf-8") as fh:
        if path.suffix == ".json":
            return json.load(fh)
        return yaml.load(fh, Loader=_Yaml12Loader)


def transformed(node, change: Callable[[dict], dict]):
    """A copy of a spec tree with `change` applied to every object, innermost first (the
    shared spec and the cached copy other tests read stay untouched)."""
    if isinstance(node, list):
        return [transformed(item, change) for item in node]
    if not isinstance(node, dict):
        return node
    return change({key: transformed(value, change) for key, value in node.items()})


def _nullable_as_null(node: dict) -> dict:
    if not node.pop("nullable", False):
        return node
    if "type" not in node:
        return {"anyOf": [{"type": "null"}, node]}
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    node["type"] = [*types, "null"]
    if "enum" in node:
        node["enum"] = [*node["enum"], None]
    return node


def allow_null(spec):
    """OpenAPI 3.0's `nullable: true` as JSON Schema (which ignores it): the type admits null."""
    return transformed(spec, _nullable_as_null)


def violations(make_validator: Callable[[], Any], instance) -> list[str]:
    """The first violations of the validator's schema as `path: message`; [] without specs."""
    if not specs_available():
        _announce_missing()
        return []
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in make_validator().iter_errors(instance)][:5]


class Schema:
    """One schema built from a spec file (taken out and adapted by `build`), validated lazily."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build

    @functools.cached_property
    def _validator(self):
        return self._build()

    def errors(self, instance) -> list[str]:
        return violations(lambda: self._validator, instance)


class Contract:
    """Validates instances against named schemas of one provider's spec, optionally adapted
    first by `adapt` (a function from the spec to a corrected copy)."""

    def __init__(self, relative: str, adapt: Callable[[dict], dict] | None = None):
        self.relative = relative
        self._adapt = adapt
        self._validators: dict[str, object] = {}

    @functools.cached_property
    def _registry_and_class(self):
        spec = load_spec(self.relative)
        spec = self._adapt(spec) if self._adapt else spec
        version = str(spec.get("openapi", "3.1"))
        validator_class = OAS30Validator if version.startswith("3.0") else OAS31Validator
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        return Registry().with_resource("urn:spec", resource), validator_class

    def errors(self, pointer: str, instance) -> list[str]:
        """Violations of the schema at `pointer` (e.g. '/components/schemas/X'); [] when no spec."""
        return violations(lambda: self._validator(pointer), instance)

    def _validator(self, pointer: str):
        validator = self._validators.get(pointer)
        if validator is None:
            registry, validator_class = self._registry_and_class
            validator = validator_class({"$ref": f"urn:spec#{pointer}"}, registry=registry)
            self._validators[pointer] = validator
        return validator

    def request_body_pointer(self, path: str, method: str = "post") -> str:
        """The pointer of an operation's JSON request body schema."""
        escaped = path.replace("~", "~0").replace("/", "~1")
        return (f"/paths/{escaped}/{method}/requestBody/content/application~1json/schema")
