"""Ship the top-level report_templates/ inside the built package (mia_audit/report_templates/).

All metadata is in pyproject.toml. The canonical templates stay in the repository's top-level
report_templates/ (DESIGN §3); a checkout or an editable install reads them there, and a wheel carries a
copy that mia_audit.report.templates finds first.
"""

from pathlib import Path
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATES = Path(__file__).resolve().parent / "report_templates"


class BuildPyWithTemplates(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folder directly
            return
        target = Path(self.build_lib) / "mia_audit" / "report_templates"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(TEMPLATES, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithTemplates})
