"""Records longer than the context in `obte finetune classify|residue`: cut, windowed or refused
(:func:`encode_examples`), windows trained with their own residues' labels, and evaluated as `obte predict`
predicts them (the mean over the windows holding each residue), on the real proteins of tests/data/tasks."""

import numpy as np
import pytest
import torch
from conftest import DATA

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.embedding.predict import FineTunedTask, PredictSettings, predict_records
from obte_cli.engine.finetuning.tasks import (
    EncodedSplit,
    encode_examples,
    encode_split,
    predict_split,
    read_residue_split,
    read_sequence_split,
    residue_answers,
    token_targets,
    training_targets,
)
from obte_cli.engine.finetuning.trainer import TokenTask
from obte_cli.engine.model.directory import LoadedModel
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.loading import load_tokenizer

TASKS = DATA / "tasks"
CONTEXT = 64
WINDOW = CONTEXT - 2  # the default window: the most residues that fit beside the tag and <EOS>


def _starts(length: int) -> list[int]:
    """Window starts as `obte embed` and `obte predict` place them: every half window, the last flush with the end."""
    starts = list(range(0, max(length - WINDOW, 0) + 1, WINDOW // 2))
    if starts[-1] + WINDOW < length:
        starts.append(length - WINDOW)
    return starts


@pytest.fixture(scope="module", params=["residue", "omnibiote-mixed"])
def tokenizer(request):
    return load_tokenizer(request.param)


@pytest.fixture(scope="module")
def test_split():
    return read_residue_split(TASKS / "hydropathy_test.tsv", "test", "classification")


def _tokens(tokenizer, sequence: str) -> int:
    return len(tokenizer.encode_one([Segment(sequence, "protein")]))


def _model_and_head(tokenizer, n_outputs):
    """A micro model (context 64) and head with random weights (a fresh head outputs zeros)."""
    torch.manual_seed(0)
    config = preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=CONTEXT)
    model = ObteModel(config)
    head = LinearHead(model.config.width, n_outputs)
    with torch.no_grad():
        for p in [*model.parameters(), *head.parameters()]:
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval(), head.eval()


def test_long_records_are_windowed_where_predict_places_windows(tokenizer, test_split):
    examples = encode_examples(tokenizer, test_split, "protein", CONTEXT, "window", "hydropathy_test.tsv")
    long = [i for i, s in enumerate(test_split.sequences) if _tokens(tokenizer, s) > CONTEXT]
    assert long and examples.windowed == len(long) and examples.cut == 0 and examples.n_records == 15
    assert examples.records == sorted(examples.records)  # record order, every record present
    assert set(examples.records) == set(range(15))
    for index, sequence in enumerate(test_split.sequences):
        mine = [k for k, r in enumerate(examples.records) if r == index]
        starts = _starts(len(sequence)) if index in long else [0]
        assert [examples.offsets[k] for k in mine] == starts
        for k, start in zip(mine, starts):
            piece = sequence[start : start + WINDOW] if index in long else sequence
            expected = tokenizer.encode_one([Segment(piece, "protein", test_split.ids[index])])
            assert np.array_equal(examples.encodings[k].ids, expected.ids) and len(expected) <= CONTEXT


def test_cut_and_refused_long_records(tokenizer, test_split):
    cut = encode_examples(tokenizer, test_split, "protein", CONTEXT, "cut", "hydropathy_test.tsv")
    assert len(cut) == 15 and cut.records == list(range(15)) and cut.windowed == 0
    too_long = [record for record, s in zip(test_split.ids, test_split.sequences) if _tokens(tokenizer, s) > CONTEXT]
    assert cut.cut == len(too_long) > 0
    assert all(len(e) <= CONTEXT for e in cut.encodings)
    assert [e.ids.tolist() for e in cut.encodings] == [
        e.ids.tolist() for e in encode_split(tokenizer, test_split, "protein", CONTEXT, True, "t")
    ]  # the bench's list of encodings: the same cut
    with pytest.raises(InputError) as refused:
        encode_examples(tokenizer, test_split, "protein", CONTEXT, "error", "hydropathy_test.tsv", refusal="say so")
    message = str(refused.value)
    assert message.startswith(f"hydropathy_test.tsv: record '{too_long[0]}': ") and message.endswith(
        "exceed the model's context of 64 (say so)"
    )


def test_each_window_trains_on_its_own_residues_labels(tokenizer):
    train = read_residue_split(TASKS / "hydropathy_train.tsv", "train", "classification")
    examples = encode_examples(tokenizer, train, "protein", CONTEXT, "window", "hydropathy_train.tsv")
    assert examples.windowed > 0
    targets, _, _ = training_targets(train, examples, "classification", True, {"H": 0, "P": 1})
    assert len(targets) == len(examples)
    for encoding, record, offset, target in zip(examples.encodings, examples.records, examples.offsets, targets):
        labels = train.labels[record]
        windowed = examples.records.count(record) > 1
        piece = train.sequences[record][offset : offset + WINDOW] if windowed else train.sequences[record]
        assert np.array_equal(target, token_targets(encoding, labels[offset : offset + len(piece)], "classification",
                                                    {"H": 0, "P": 1}))  # fmt: skip
        # the labels are the window's own residues': hydropathy follows the amino acid
        single = [t for t in np.flatnonzero(encoding.is_residue) if encoding.end[t] - encoding.start[t] == 1]
        assert ["HP"[int(target[t])] for t in single] == [labels[offset + encoding.start[t]] for t in single]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_evaluation_of_windows_is_what_obte_predict_gives(tokenizer, test_split, task):
    """The dev/test evaluation of a residue task averages its windows as `obte predict` does (same model, same
    records): class probabilities or values per residue, then the class."""
    n_outputs = 2 if task == "classification" else 1
    model, head = _model_and_head(tokenizer, n_outputs)
    classes = ("H", "P") if task == "classification" else None
    mean, sd = (0.0, 1.0) if classes else (0.3, 2.0)
    examples = encode_examples(tokenizer, test_split, "protein", CONTEXT, "window", "hydropathy_test.tsv")
    reading = FineTunedTask(True, classes, mean, sd, "first")
    lengths = [len(s) for s in test_split.sequences]
    answers = residue_answers(model, head, reading, examples, lengths, tokenizer.pad_id, "cpu")
    loaded = LoadedModel(
        model, tokenizer, head_state=head.state_dict(), head={"n_outputs": n_outputs, "base_width": head.base_width}
    )
    segments = [Segment(s, "protein", i) for i, s in zip(test_split.ids, test_split.sequences)]
    predicted = list(predict_records(loaded, reading, segments, PredictSettings(on_unknown="error", max_tokens=300)))
    windows = [len(_starts(len(s))) if _tokens(tokenizer, s) > CONTEXT else 1 for s in test_split.sequences]
    assert [p.windows for p in predicted] == windows and max(windows) > 1
    for mine, theirs, n in zip(answers, predicted, lengths):
        assert mine.shape == theirs.values.shape == (n, n_outputs) and not np.isnan(mine).any()
        assert np.allclose(mine, theirs.values, atol=1e-5)
    scored = predict_split(model, head, TokenTask("cross_entropy" if classes else "mse"), test_split, examples,
                           tokenizer.pad_id, "cpu", task, True, mean, sd, list(classes or []))  # fmt: skip
    for values, theirs in zip(scored, predicted):
        expected = theirs.values.argmax(1) if classes else theirs.values[:, 0]
        assert not np.isnan(values).any()  # every residue of every record is scored
        assert np.allclose(values, expected, atol=1e-5)


def test_a_sequence_task_reads_one_example_per_record():
    tokenizer = load_tokenizer("residue")
    split = read_sequence_split(TASKS / "coding_test.csv", "test", "classification")
    examples = encode_examples(tokenizer, split, "DNA", CONTEXT, "cut", "coding_test.csv")
    assert examples.cut == 92 and len(examples) == 92  # 100 nt each
    model, head = _model_and_head(tokenizer, 2)
    windows = encode_examples(tokenizer, split, "DNA", CONTEXT, "window", "coding_test.csv")
    assert isinstance(windows, EncodedSplit) and len(windows) > 92
    with pytest.raises(ValueError, match="one example per record"):
        predict_split(model, head, None, split, windows, tokenizer.pad_id, "cpu", "classification", False, 0, 1)
