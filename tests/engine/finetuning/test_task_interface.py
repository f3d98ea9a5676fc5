"""The trainer's Task interface (outputs, loss, predict) on real rows: GUE-style sequences and per-residue
labels from tests/data/tasks, and the contacts of the bundled 1AZP example."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATA

from obte_cli.engine.contacts.io import sites_from_structure
from obte_cli.engine.contacts.sites import encode_site, protein_token_targets
from obte_cli.engine.core.resources import example_file
from obte_cli.engine.finetuning.tasks import (
    encode_split,
    read_residue_split,
    read_sequence_split,
    token_targets,
)
from obte_cli.engine.finetuning.trainer import (
    FinetuneSettings,
    SequenceTask,
    TokenTask,
    fine_tune,
    per_token_loss,
)
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.tokenizers.loading import load_tokenizer
from obte_cli.engine.tokenizers.residues import (
    segment_residue_tokens,
    token_values_to_residues,
)

TASKS = DATA / "tasks"
CPU = torch.device("cpu")


def _model_and_head(tokenizer, n_outputs):
    """A micro model and head with random weights (a fresh one attends uniformly and outputs zeros)."""
    torch.manual_seed(0)
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=512))
    head = LinearHead(model.config.width, n_outputs)
    with torch.no_grad():
        for p in [*model.parameters(), *head.parameters()]:
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval(), head.eval()


def _alone(model, head, ids):
    """The head on every token of one sequence, run on its own (no packing)."""
    with torch.no_grad():
        return head(model(torch.as_tensor(ids)[None]).hidden[0])


@pytest.fixture(scope="module", params=["residue", "omnibiote-mixed"])
def tokenizer(request):
    return load_tokenizer(request.param)


@pytest.fixture(scope="module")
def coding_rows(tokenizer):
    split = read_sequence_split(TASKS / "coding_train.csv", "train", "classification")
    split.ids, split.sequences, split.labels = split.ids[:6], split.sequences[:6], split.labels[:6]
    return split, encode_split(tokenizer, split, "DNA", 512, False, "coding_train.csv")


@pytest.fixture(scope="module")
def hydropathy_rows(tokenizer):
    split = read_residue_split(TASKS / "hydropathy_train.tsv", "train", "classification")
    split.ids, split.sequences, split.labels = split.ids[:4], split.sequences[:4], split.labels[:4]
    return split, encode_split(tokenizer, split, "protein", 512, False, "hydropathy_train.tsv")


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_sequence_task_reads_the_first_token(tokenizer, coding_rows, loss_name):
    split, encodings = coding_rows
    ids = [e.ids for e in encodings]
    n_outputs = 2 if loss_name == "cross_entropy" else 1
    model, head = _model_and_head(tokenizer, n_outputs)
    task = SequenceTask(loss_name)
    with torch.no_grad():
        outputs = task.outputs(model, head, ids, tokenizer.pad_id, CPU)
    first = torch.stack([_alone(model, head, i)[0] for i in ids])
    assert outputs.shape == (6, n_outputs) and torch.allclose(outputs, first, atol=1e-5)
    if loss_name == "cross_entropy":
        targets = [int(label == "coding") for label in split.labels]
        assert task.loss(outputs, targets) == pytest.approx(
            float(F.cross_entropy(first, torch.tensor(targets))), rel=1e-5
        )
        expected = first.argmax(1).numpy()
    else:
        targets = [float(s.count("G") + s.count("C")) / len(s) for s in split.sequences]
        assert task.loss(outputs, targets) == pytest.approx(
            float(((first[:, 0] - torch.tensor(targets)) ** 2).mean()), rel=1e-5
        )
        expected = first[:, 0].numpy()
    predicted = task.predict(model, head, ids, tokenizer.pad_id)
    assert len(predicted) == 6 and np.allclose(predicted, expected, atol=1e-5)
    reversed_order = task.predict(model, head, ids[::-1], tokenizer.pad_id, max_tokens=250)  # 2 sequences a pass
    assert np.allclose(reversed_order[::-1], predicted, atol=1e-5)  # input order, whatever the packing


def test_token_task_classes_train_on_residue_tokens_only(tokenizer, hydropathy_rows):
    split, encodings = hydropathy_rows
    ids = [e.ids for e in encodings]
    model, head = _model_and_head(tokenizer, 2)
    task = TokenTask("cross_entropy")
    targets = [
        token_targets(e, labels, "classification", {"H": 0, "P": 1}) for e, labels in zip(encodings, split.labels)
    ]
    with torch.no_grad():
        outputs = task.outputs(model, head, ids, tokenizer.pad_id, CPU)
    assert [o.shape for o in outputs] == [(len(e), 2) for e in encodings]
    residue_tokens = [segment_residue_tokens(e) for e in encodings]
    logits = torch.cat([o[t] for o, t in zip(outputs, residue_tokens)])
    classes = torch.cat([torch.as_tensor(y[t]).long() for y, t in zip(targets, residue_tokens)])
    assert task.loss(outputs, targets) == pytest.approx(float(F.cross_entropy(logits, classes)), rel=1e-5)
    shifted = [o.clone() for o in outputs]
    for o in shifted:
        o[0] += 10.0  # the tag
        o[-1] -= 10.0  # <EOS>
    assert task.loss(shifted, targets) == pytest.approx(float(task.loss(outputs, targets)), rel=1e-6)
    predicted = task.predict(model, head, ids, tokenizer.pad_id)
    assert len(predicted) == len(ids)
    for p, e, out, sequence in zip(predicted, encodings, outputs, split.sequences):
        assert np.array_equal(p, out.numpy().argmax(1))
        per_residue = token_values_to_residues(e, p.astype(float), len(sequence))
        assert len(per_residue) == len(sequence) and not np.isnan(per_residue).any()  # one per residue, always


def test_token_task_values_standardised_by_the_caller(tokenizer, hydropathy_rows):
    split, encodings = hydropathy_rows
    ids = [e.ids for e in encodings]
    model, head = _model_and_head(tokenizer, 1)
    task = TokenTask("mse")
    values = [[1.0 if c == "H" else -1.0 for c in labels] for labels in split.labels]
    targets = [token_targets(e, v, "regression", None) for e, v in zip(encodings, values)]
    with torch.no_grad():
        outputs = task.outputs(model, head, ids, tokenizer.pad_id, CPU)
    residue_tokens = [segment_residue_tokens(e) for e in encodings]
    assert all(np.isnan(np.delete(y, t)).all() for y, t in zip(targets, residue_tokens))  # tags, <EOS>
    squared = torch.cat(
        [(o[t, 0] - torch.as_tensor(y[t]).float()) ** 2 for o, y, t in zip(outputs, targets, residue_tokens)]
    )
    assert task.loss(outputs, targets) == pytest.approx(float(squared.mean()), rel=1e-5)
    predicted = task.predict(model, head, ids, tokenizer.pad_id, max_tokens=300)
    assert [p.shape for p in predicted] == [(len(e),) for e in encodings]
    assert all(np.allclose(p, o[:, 0].numpy(), atol=1e-5) for p, o in zip(predicted, outputs))


def test_token_task_contacts_score_protein_tokens_of_a_real_site(tokenizer):
    sites = sites_from_structure(example_file("1AZP.pdb.gz"))
    encodings = [encode_site(tokenizer, s, 512) for s in sites]
    ids = [e.ids for e in encodings]
    model, head = _model_and_head(tokenizer, 3)
    task = TokenTask("bce")
    targets = [protein_token_targets(e, s.labels) for e, s in zip(encodings, sites)]
    with torch.no_grad():
        outputs = task.outputs(model, head, ids, tokenizer.pad_id, CPU)
    protein = [segment_residue_tokens(e, 0) for e in encodings]
    logits = torch.cat([o[t] for o, t in zip(outputs, protein)])
    fractions = torch.cat([torch.as_tensor(y[t]) for y, t in zip(targets, protein)])
    assert 0 < float(fractions.mean()) < 1  # real contacts, and real non-contacts
    assert task.loss(outputs, targets) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, fractions)), rel=1e-5
    )
    nucleic_changed = [o.clone() for o in outputs]
    for o, e in zip(nucleic_changed, encodings):
        o[e.segment > 0] = 5.0  # the nucleic acids are context, not targets
    assert task.loss(nucleic_changed, targets) == pytest.approx(float(task.loss(outputs, targets)), rel=1e-6)
    predicted = task.predict(model, head, ids, tokenizer.pad_id)
    assert len(predicted) == len(sites)
    for p, o, e, site in zip(predicted, outputs, encodings, sites):
        assert p.shape == (len(e), 3) and np.allclose(p, torch.sigmoid(o).numpy(), atol=1e-5)
        assert token_values_to_residues(e, p, len(site.protein)).shape == (len(site.protein), 3)


def test_per_token_loss_weighs_every_token_once():
    generator = torch.Generator().manual_seed(0)
    outputs = [torch.randn(12, 2, generator=generator), torch.randn(5, 2, generator=generator)]
    targets = [np.r_[-100, np.arange(10) % 2, -100], np.r_[-100, 1, 1, 0, -100]]
    one = [per_token_loss("cross_entropy", [o], [y]) for o, y in zip(outputs, targets)]
    both = per_token_loss("cross_entropy", outputs, targets)
    assert float(both) == pytest.approx((10 * float(one[0]) + 3 * float(one[1])) / 13, rel=1e-6)
    assert float(per_token_loss("mse", [outputs[1][:, :1]], [np.full(5, np.nan)])) == 0  # nothing to learn


def test_tasks_refuse_unknown_losses_and_the_trainer_mismatched_targets(tokenizer, hydropathy_rows):
    with pytest.raises(ValueError, match="mse or cross_entropy"):
        SequenceTask("bce")
    with pytest.raises(ValueError, match="mse, cross_entropy or bce"):
        TokenTask("hinge")
    split, encodings = hydropathy_rows
    model, head = _model_and_head(tokenizer, 2)
    targets = [
        token_targets(e, labels, "classification", {"H": 0, "P": 1}) for e, labels in zip(encodings, split.labels)
    ]
    with pytest.raises(ValueError, match="differ in length"):
        fine_tune(
            model,
            head,
            TokenTask("cross_entropy"),
            [e.ids for e in encodings],
            targets[:-1],
            FinetuneSettings(),
            tokenizer.pad_id,
        )
