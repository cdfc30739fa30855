"""Where `droughtwatch demo` writes: the data folder by default, never the working directory
(which may be a repository), or the folder given with --out."""

from __future__ import annotations

from pathlib import Path

import pytest
from droughtwatch_tools.local.demo import DemoOptions
from droughtwatch_tools.local.state import HOME_VARIABLE


def test_the_demo_writes_into_the_data_folder_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert DemoOptions().out() == tmp_path / "home" / "demo"
    assert DemoOptions(out_dir=Path("elsewhere")).out() == tmp_path / "elsewhere"
