"""Where the report's Jinja2 templates and CSS live.

The canonical files are in the repository's top-level `report_templates/`. A built wheel carries a copy
inside the package (`mia_audit/report_templates/`, copied by setup.py's build_py), which is preferred when
present; a checkout or an editable install finds the top-level folder beside the package.
"""

from __future__ import annotations

from pathlib import Path

MAIN_TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # .../mia_audit


def template_dirs() -> list[Path]:
    """Candidate folders, most specific first: packaged copy, then the checkout's top-level folder."""
    return [_PACKAGE_ROOT / "report_templates", _PACKAGE_ROOT.parent / "report_templates"]


def templates_dir() -> Path:
    for candidate in template_dirs():
        if (candidate / MAIN_TEMPLATE).is_file() and (candidate / STYLESHEET).is_file():
            return candidate
    searched = ", ".join(str(path) for path in template_dirs())
    raise RuntimeError(f"report templates not found (searched {searched}); reinstall mia-audit")
