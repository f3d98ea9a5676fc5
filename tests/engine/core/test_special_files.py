"""Files obte must read whole are checked to be regular files before they are opened: a FIFO with no writer in
the place of a model's config, weights or tokenizer, a checkpoint's index or trainer state, or a sentencepiece
model would otherwise block for ever (#31 §3)."""

import os
import shutil

import pytest
from conftest import REPO, within

from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.core.inputs import refuse_special_file

BACKBONE = REPO / "share" / "models" / "obte1_omni_t6_6M_DEB12"


def _fifo(path):
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def test_a_fifo_or_a_directory_is_not_a_regular_file(tmp_path):
    with within(5), pytest.raises(ObteError, match="not a regular file"):
        refuse_special_file(_fifo(tmp_path / "x"))
    with pytest.raises(ObteError, match="is a directory"):
        refuse_special_file(tmp_path)
    refuse_special_file(tmp_path / "absent")  # what does not exist is for the caller to report
    (tmp_path / "file").write_text("x")
    refuse_special_file(tmp_path / "file")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json"])
def test_a_model_directory_with_a_fifo_is_refused_without_blocking(tmp_path, name):
    from obte_cli.engine.model.directory import load_model

    model = tmp_path / "model"
    shutil.copytree(BACKBONE, model)
    _fifo(model / name)
    with within(10), pytest.raises(ObteError, match=f"{name}: is not a regular file"):
        load_model(model)


def test_a_fifo_as_a_sentencepiece_model_is_refused(tmp_path):
    from obte_cli.engine.tokenizers.sentencepiece import SentencePieceTokenizer

    with within(5), pytest.raises(ObteError, match="not a regular file"):
        SentencePieceTokenizer.from_model_files({str(_fifo(tmp_path / "x.model")): ["protein"]})


def test_checkpoint_files_that_are_fifos_are_refused(tmp_path):
    from obte_cli.engine.pretraining.safe_checkpoint import read_metadata_safely
    from obte_cli.engine.pretraining.train_state import read_checkpoint_json

    with within(5), pytest.raises(ObteError, match="not a regular file"):
        read_metadata_safely(_fifo(tmp_path / ".metadata"))
    with within(5), pytest.raises(ObteError, match="not a regular file"):
        read_checkpoint_json(_fifo(tmp_path / "trainer.json"))
