"""Headless Chromium for the browser tests: Debian's package, installed when it is missing.

Playwright for Python drives it through its own driver (shipped in the pip package);
``playwright install`` is never run, since it downloads browser builds from outside the
package registries.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
#: Chromium refuses its sandbox as root (CI and these machines run tests as root)
LAUNCH_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


class BrowserUnavailableError(RuntimeError):
    """Chromium is not there and scripts/chromium.sh could not install it."""


def ensure_chromium() -> Path:
    """``/usr/bin/chromium``, installed by ``scripts/chromium.sh`` first if need be."""
    if not CHROMIUM.exists():
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "chromium.sh")],
            capture_output=True, text=True, timeout=1200,
        )
        if result.returncode != 0 or not CHROMIUM.exists():
            raise BrowserUnavailableError(
                f"scripts/chromium.sh could not install Chromium (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
    assert shutil.which(str(CHROMIUM)) is not None
    return CHROMIUM
