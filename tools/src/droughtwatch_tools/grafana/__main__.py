"""Regenerate the provisioning files: `uv run python -m droughtwatch_tools.grafana [folder]`
(default: ./grafana, run from the repository root)."""

from __future__ import annotations

import sys
from pathlib import Path

from droughtwatch_tools.grafana.provisioning import write_files

if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("grafana")
    for written in write_files(target):
        print(written)
