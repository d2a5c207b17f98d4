"""The report's scope, threat model, limitations and signature blocks: what was measured, under which
assumptions, and what the controller still has to fill in (from `context.yaml` when given)."""

from __future__ import annotations

from mia_audit.context import SCOPE_FIELDS, ReportContext
from mia_audit.report.format import count, pct
from mia_audit.results import AuditResult

__all__ = ["class_table", "columns_summary", "exposure_note", "limitations", "scope_context", "signatories",
           "threat_model"]


def columns_summary(columns: list[str], limit: int = 8) -> str:
    if not columns:
        return "none"
    shown = ", ".join(columns[:limit])
    return f"{len(columns)}: {shown}" + (f", … {columns[-1]}" if len(columns) > limit else "")


def class_table(result: AuditResult) -> tuple[list[tuple[str, str, str]] | None, str]:
    members = result.data.member_class_counts
    nonmembers = result.data.nonmember_class_counts
    classes = list(dict.fromkeys([*members, *nonmembers]))
    summary = f"{len(classes)} classes present"
    if members:
        summary += f"; members per class {min(members.values()):,}–{max(members.values()):,}"
    if nonmembers:
        summary += f", non-members per class {min(nonmembers.values()):,}–{max(nonmembers.values()):,}"
    if len(classes) > 24:
        return None, summary
    return [(name, count(members.get(name, 0)), count(nonmembers.get(name, 0))) for name in classes], summary


def exposure_note(result: AuditResult, context: ReportContext | None) -> str:
    audited = result.config.get("exposure", "scores")
    if context is None or context.exposure is None:
        return ""
    deployed_labels = context.exposure == "labels"
    if audited == "scores" and deployed_labels:
        return (
            "The context says the deployment returns labels only, but this audit assumed score exposure: the "
            "score-based attacks overstate the deployed exposure; the label-only attacks apply as measured."
        )
    if audited == "labels" and not deployed_labels:
        return (
            f"The context says the deployment returns {context.exposure.replace('_', '-')} scores, but this audit "
            "assumed labels only: the measured leakage understates the deployed exposure. Re-run with --exposure scores."
        )
    return ""


def _shadow_row(result: AuditResult, shadow: list[str], step5) -> str:
    """How the attacker's own models were made (the strongest attacks of the audit rest on them)."""
    if not shadow:
        return (
            "Not used" + (f" (workflow step 5 {step5.status})" if step5 else "")
            + ": no attacker-trained models of the target's architecture."
        )
    info = result.shadow_models
    made = ""
    if info is not None:
        made = (
            f" {info.n_shadow_models} shadow models — {info.description} — each trained on a random half of a pool of "
            f"{info.n_pool:,} records ({info.keep_design}); they fit their training halves with accuracy "
            f"{info.shadow_train_accuracy:.3f} and unseen records with {info.shadow_heldout_accuracy:.3f}. The "
            "attacker is assumed to know the architecture and training recipe and to hold same-distribution data."
        )
    return f"Used by: {', '.join(shadow)}.{made}"


def threat_model(result: AuditResult) -> list[tuple[str, str]]:
    exposure = result.config.get("exposure", "scores")
    families = sorted({attack.family for attack in result.attacks})
    shadow = [a.name for a in result.attacks if a.family in ("shadow", "reference")]
    step5 = next((s for s in result.workflow if s.step == 5), None)
    by_threat: dict[str, list[str]] = {}
    for attack in result.attacks:
        by_threat.setdefault(attack.threat_model, []).append(attack.name)
    rows = [
        ("Access", "Black-box: the attacker queries the deployed model and observes its outputs; no access to weights or gradients."),
        (
            "Outputs observed",
            "Probability (score) vectors and predicted labels" if exposure == "scores" else "Predicted labels only",
        ),
        (
            "Attacker's knowledge",
            "Candidate records and their true labels, drawn from the training distribution; the attacker calibrates "
            "one threshold per attack (the audit reports every threshold through the ROC, the strongest possible "
            "choice).",
        ),
        ("Shadow / reference models", _shadow_row(result, shadow, step5)),
        ("Attack families run", ", ".join(families) or "none"),
    ]
    rows.extend((f"Threat model: {threat}", ", ".join(names)) for threat, names in by_threat.items())
    return rows


def limitations(result: AuditResult, exposure_note: str) -> list[str]:
    n_nonmembers = result.data.nonmembers.n
    items = [
        "The numbers are an empirical lower bound on leakage under the stated threat model: a stronger or "
        "better-informed attacker may do better. Not detecting leakage does not show its absence.",
        "A low measured leakage does not establish that the model is anonymous under the GDPR (see EDPB "
        "Opinion 28/2024) nor that its outputs are de-identified under HIPAA (45 CFR 164.514(b)).",
        "This report is technical evidence for a DPIA or risk analysis, not legal advice and not the "
        "assessment itself: the necessity, proportionality and acceptability of the risk are for the controller.",
        "The results depend on how representative the non-members are: they must come from the training "
        "distribution and never have been used in training. A distribution shift between the two sets inflates "
        "every number; members that are not in fact training records deflate them.",
        f"With {n_nonmembers:,} non-members the smallest resolvable FPR is 1/{n_nonmembers:,} = "
        f"{pct(1 / max(n_nonmembers, 1), 3)}; rates at lower FPRs are not measured.",
        "The empirical ε lower bound is a heuristic for this model and these records, not a differential "
        "privacy guarantee.",
    ]
    step5 = next((s for s in result.workflow if s.step == 5), None)
    if step5 is not None and step5.status != "done":
        items.append(
            "No shadow- or reference-model attacks were run (workflow step 5 "
            f"{step5.status}): the worst case may understate leakage, especially at low FPR."
        )
    if exposure_note:
        items.append(exposure_note)
    items.extend(f"Run warning: {warning}" for warning in result.warnings)
    return items


def signatories(context: ReportContext | None) -> list[tuple[str, str, str]]:
    slots = (
        ("Prepared by", "prepared_by", "Privacy engineer / assessor"),
        ("Reviewed by", "reviewed_by", "Data protection officer / privacy officer"),
        ("Approved by", "approved_by", "Controller / system owner"),
    )
    rows = []
    for label, key, default_role in slots:
        person = getattr(context, key, None) if context else None
        rows.append((label, (person.name if person and person.name else ""), (person.role if person and person.role else default_role)))
    return rows


def scope_context(context: ReportContext | None) -> list[tuple[str, str | None]]:
    rows = []
    for key, label in SCOPE_FIELDS:
        value = getattr(context, key, None) if context else None
        if value is None or value == [] or value == "":
            rows.append((label, None))
        elif isinstance(value, bool):
            rows.append((label, "yes" if value else "no"))
        elif isinstance(value, list):
            rows.append((label, ", ".join(value)))
        else:
            rows.append((label, str(value).replace("_", "-") if key == "exposure" else str(value)))
    if context is not None and context.notes:
        rows.append(("Notes", context.notes))
    return rows
