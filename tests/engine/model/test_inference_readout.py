"""The sequence readouts: the first token (the reference's) and parts-mean (protein mean ‖ nucleic-acid mean),
on real ProNAB complexes from tests/data/pronab_sample.tsv, packed as the trainer packs them."""

import numpy as np
import pytest
import torch
from conftest import DATA

from obte_cli.engine.affinity.complexes import complex_segments
from obte_cli.engine.affinity.data import load_pairs_tsv
from obte_cli.engine.core.schema import SchemaError
from obte_cli.engine.finetuning.trainer import SequenceTask
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.model.heads import LinearHead, check_head, head_weight_shapes
from obte_cli.engine.model.inference import Readout, predict_sequence_task
from obte_cli.engine.tokenizers.loading import load_tokenizer


@pytest.fixture(scope="module", params=["residue", "omnibiote-mixed"])
def tokenizer(request):
    return load_tokenizer(request.param)


@pytest.fixture(scope="module")
def encodings(tokenizer):
    table, _ = load_pairs_tsv(DATA / "pronab_sample.tsv")
    rows = table.head(6).itertuples(index=False)
    return [tokenizer.encode_one(complex_segments(r.protein, r.nucleic_acid, r.complement, r.na_type)) for r in rows]


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=512))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)  # a fresh model attends uniformly; make the states differ
    return model.eval()


def test_parts_mean_is_the_mean_of_each_partner_computed_alone(tokenizer, encodings, model):
    readout = Readout("parts-mean", tokenizer.end_ids())
    width = model.config.width
    head = torch.nn.Identity()
    packed = torch.as_tensor(
        predict_sequence_task(model, head, [e.ids for e in encodings], tokenizer.pad_id, readout=readout)
    )
    assert packed.shape == (len(encodings), 2 * width)
    for row, encoding in zip(packed, encodings):
        with torch.no_grad():
            states = model(torch.as_tensor(encoding.ids)[None]).hidden[0]
        protein = torch.as_tensor(encoding.segment == 0)  # tag, residues and <EOS> of the protein
        expected = torch.cat([states[protein].mean(0), states[~protein].mean(0)])
        assert torch.allclose(row, expected, atol=1e-5)


def test_first_token_is_the_protein_tag_state(tokenizer, encodings, model):
    packed = predict_sequence_task(model, torch.nn.Identity(), [e.ids for e in encodings], tokenizer.pad_id)
    for row, encoding in zip(packed, encodings):
        with torch.no_grad():
            alone = model(torch.as_tensor(encoding.ids)[None]).hidden[0, 0]
        assert np.allclose(row, alone.numpy(), atol=1e-5)


def test_parts_mean_trains_a_head_of_twice_the_width(tokenizer, encodings, model):
    readout = Readout("parts-mean", tokenizer.end_ids())
    head = LinearHead(readout.input_width(model.config.width), 1)
    task = SequenceTask("mse", readout)
    outputs = task.outputs(model, head, [e.ids for e in encodings], tokenizer.pad_id, torch.device("cpu"))
    loss = task.loss(outputs, [1.0] * len(encodings))
    loss.backward()
    assert outputs.shape == (len(encodings), 1) and head.proj.weight.grad.shape == (1, 2 * model.config.width)


def test_readout_refuses_what_it_cannot_read(tokenizer):
    with pytest.raises(ValueError, match="readout must be one of"):
        Readout("cls")
    with pytest.raises(ValueError, match="<EOS> ids"):
        Readout("parts-mean")
    protein_only = tokenizer.encode_one(complex_segments("MKRIAVLG", "")[:1])
    with pytest.raises(ValueError, match="two parts"):
        Readout("parts-mean", tokenizer.end_ids()).first_part_length(protein_only.ids)


def test_end_ids_are_the_segment_ends(tokenizer, encodings):
    for encoding in encodings:
        ends = np.flatnonzero(np.isin(encoding.ids, list(tokenizer.end_ids())))
        # one <EOS> per segment, each the segment's last token
        assert len(ends) == encoding.segment.max() + 1
        assert all(encoding.segment[i] != encoding.segment[i + 1] for i in ends[:-1])
        assert ends[-1] == len(encoding) - 1


def test_head_description_readout_is_validated():
    config = preset_config("micro", 64, max_positions=256)
    head = {"kind": "sequence", "n_outputs": 1, "task": "affinity", "dg_mean": -9.0, "dg_sd": 1.5}
    assert check_head({**head, "readout": "parts-mean"}, config)["readout"] == "parts-mean"
    assert head_weight_shapes({**head, "readout": "parts-mean"}, 64)["proj.weight"] == (1, 128)
    assert head_weight_shapes(head, 64)["proj.weight"] == (1, 64)  # no readout: the first token
    with pytest.raises(SchemaError, match="readout"):
        check_head({**head, "readout": "cls"}, config)
    classify = {
        "kind": "sequence",
        "n_outputs": 2,
        "task": "classify-classification",
        "per_residue": False,
        "classes": ["a", "b"],
        "target_mean": 0.0,
        "target_sd": 1.0,
    }
    with pytest.raises(SchemaError, match="must be first or mean"):
        check_head({**classify, "readout": "parts-mean"}, config)


def test_mean_is_the_mean_of_every_token_computed_alone(tokenizer, encodings, model):
    packed = predict_sequence_task(
        model, torch.nn.Identity(), [e.ids for e in encodings], tokenizer.pad_id, readout=Readout("mean")
    )
    for row, encoding in zip(packed, encodings):
        with torch.no_grad():
            alone = model(torch.as_tensor(encoding.ids)[None]).hidden[0].mean(0)
        assert np.allclose(row, alone.numpy(), atol=1e-5)


def test_sequence_tasks_accept_first_or_mean_readouts():
    config = preset_config("micro", 64, max_positions=256)
    classify = {
        "kind": "sequence",
        "n_outputs": 1,
        "task": "classify-regression",
        "per_residue": False,
        "classes": None,
        "target_mean": 0.0,
        "target_sd": 1.0,
    }
    assert check_head({**classify, "readout": "mean"}, config)["readout"] == "mean"
    assert head_weight_shapes({**classify, "readout": "mean"}, 64)["proj.weight"] == (1, 64)
