"""The loss specs: one YAML file per loss under ``losses/`` and the JSON Schema they must pass.

This package is data only; ``loss_conformance_reference.loader`` reads it.
"""
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent
LOSSES_DIR = SPEC_DIR / "losses"
SCHEMA_PATH = SPEC_DIR / "loss.schema.json"
DEVIATIONS_SCHEMA_PATH = SPEC_DIR / "deviations.schema.json"
CAPABILITIES_SCHEMA_PATH = SPEC_DIR / "capabilities.schema.json"

__all__ = ["CAPABILITIES_SCHEMA_PATH", "DEVIATIONS_SCHEMA_PATH", "LOSSES_DIR", "SCHEMA_PATH", "SPEC_DIR"]
