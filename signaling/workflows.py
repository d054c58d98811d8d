"""Verification workflows per claim type (the ordered steps an officer checks)."""

from __future__ import annotations

JHT_STEPS: tuple[str, ...] = (
    "identity",
    "membership",
    "family_card",
    "bank_book",
    "termination_letter",
    "decision",
)

STEP_LABELS: dict[str, str] = {
    "identity": "Identity (e-KTP)",
    "membership": "Membership card",
    "family_card": "Family card (KK)",
    "bank_book": "Bank book",
    "termination_letter": "Termination letter",
    "decision": "Decision",
}

DEFAULT_WORKFLOWS: dict[str, tuple[str, ...]] = {"JHT": JHT_STEPS}


def steps_for(claim_type: str, workflows: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Steps of a claim type; unknown types fall back to the JHT steps."""
    table = workflows or DEFAULT_WORKFLOWS
    return list(table.get(claim_type, JHT_STEPS))
