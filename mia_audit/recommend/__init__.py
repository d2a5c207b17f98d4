"""Mitigation recommendations from an AuditResult and what it shows."""
