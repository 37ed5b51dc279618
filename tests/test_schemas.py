"""The shipped JSON schemas are valid schemas: the loader no longer checks them in every process
that reads a spec, so this is where a schema edit that breaks one is caught."""
from __future__ import annotations

import json

import jsonschema
import pytest

from loss_conformance_spec import CAPABILITIES_SCHEMA_PATH, DEVIATIONS_SCHEMA_PATH, SCHEMA_PATH


def _metaschema_problem(schema: dict) -> str | None:
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


@pytest.mark.parametrize("path", [SCHEMA_PATH, DEVIATIONS_SCHEMA_PATH, CAPABILITIES_SCHEMA_PATH],
                         ids=lambda p: p.name)
def test_each_shipped_schema_is_valid_under_its_metaschema(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert _metaschema_problem(schema) is None


def test_a_schema_edit_that_breaks_it_is_caught():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    schema["properties"]["id"] = {"type": "text"}  # not a JSON Schema type
    assert "is not valid under any of the given schemas" in _metaschema_problem(schema)
