"""What the run ran on (for the report appendix): Python, platform, CPU, package versions."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from mia_audit.results import Environment

PACKAGES = ("mia-audit", "numpy", "scipy", "scikit-learn", "onnx", "onnxruntime", "torch", "pydantic", "typer")


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_environment() -> Environment:
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(terse=True),
        cpu=_cpu_name(),
        packages={name: _version(name) for name in PACKAGES},
    )
