"""`python -m mmstudio train --help` and `eval --help` answer (they failed: unrecognized
arguments), as does each trainer's and evaluator's own --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmstudio.cli import main
from mmstudio.config import REPO_ROOT
from mmstudio.evaluation import EVALUATORS
from mmstudio.training import TRAINERS


@pytest.mark.parametrize("verb", ["train", "eval"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_verb_help_lists_the_models(verb: str, flag: str, capsys) -> None:
    assert main([verb, flag]) == 0
    out = capsys.readouterr().out
    table = TRAINERS if verb == "train" else EVALUATORS
    assert f"usage: python -m mmstudio {verb} MODEL_ID" in out
    assert all(model_id in out for model_id in table)


def test_train_help_as_a_user_types_it() -> None:
    done = subprocess.run([sys.executable, "-m", "mmstudio", "train", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "shapes-unet" in done.stdout and not done.stderr


@pytest.mark.parametrize("model_id", sorted(TRAINERS))
def test_each_trainer_has_its_own_help(model_id: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", model_id, "--help"])
    assert exit_info.value.code == 0
    assert "--resume" in capsys.readouterr().out
