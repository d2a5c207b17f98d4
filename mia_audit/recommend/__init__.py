"""Mitigation recommendations from an AuditResult and what it shows.

`rules` is the registry and `recommend()`; importing this package registers the rules in the report's order:
the measured step-7 trade-off first, then the mitigations, then the assurance items.
"""

from mia_audit.recommend import defense_rule, mitigations, assurance  # noqa: F401, I001 — registers, in order
