"""`python -m mmstudio eval ID` fails (exit 1) when any target is missed, for every evaluator:
a random tiny model of each kind misses them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmstudio.cli import main
from tests import tiny_models


@pytest.mark.parametrize(("model_id", "make"), [("shapes-vqvae", tiny_models.make_vq),
                                                ("shapes-clip", tiny_models.make_open_clip)])
def test_missed_targets_fail_the_command(model_id: str, make, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    folder = make(tmp_path / "model")
    assert main(["eval", model_id, "--folder", str(folder), "--n", "12"]) == 1
    out = capsys.readouterr().out
    assert "MISSED" in out
