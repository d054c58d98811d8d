"""Verification workflows per claim type and rejection reasons: the defaults shipped in
``signaling/workflows.toml`` (the JHT claim steps of DESIGN.md), read once."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any


@cache
def _shipped() -> dict[str, Any]:
    return tomllib.loads(resources.files("lapak.signaling").joinpath("workflows.toml").read_text())


def default_workflows() -> dict[str, list[str]]:
    return {name: list(w["steps"]) for name, w in _shipped()["workflows"].items()}


def default_reasons() -> list[str]:
    return list(_shipped()["reasons"]["list"])
