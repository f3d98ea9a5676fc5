"""`obte export --format hf`: the directory loads in Hugging Face transformers (no remote code) and computes
obte's numbers.

Two models: the bundled backbone and a small model whose every weight is random (queries, readout and norm
weights included, which obte's own initialisation leaves at zero or one), so that no folded scale or
permutation can hide behind a weight that is zero. Both are compared with obte's forward pass on protein,
DNA, RNA and protein+DNA inputs: in float64, logits and last hidden states to 1e-5 (what remains: the folded
weights are rounded once to float32, both libraries compute their rotary products in float32, and ESM's LM
head normalises once more, a relative ε/(2σ²) of the logits); in float32, where obte's own forward differs
from its float64 forward by up to 2e-5 on the bundled backbone, the export may add to that float64
difference at most twice obte's own float32 error.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import obte_output_kind
from obte_cli.engine.core.resources import default_backbone_dir, example_file
from obte_cli.engine.model.directory import load_model, save_model
from obte_cli.engine.model.encoder import ObteConfig, ObteModel, Rotary, positions_from_doc_ids
from obte_cli.engine.model.hf_export import (
    EXPORT_FILE,
    EXPORT_FORMAT,
    check_exportable,
    esm_state_dict,
    export_hf,
)
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.residue import ResidueTokenizer

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow  # two exports, float64 copies of both models

TOLERANCE = 1e-5


def _protein(length: int) -> str:
    """The first ``length`` residues of the bundled CTCF example."""
    lines = example_file("ctcf.fa").read_text().splitlines()
    return "".join(line.strip() for line in lines if not line.startswith(">"))[:length]


def _nucleotides(length: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=length))


# (obte segments, the text an ESM user writes, add_special_tokens)
INPUTS = {
    "protein": ([Segment(_protein(400), "protein")], _protein(400), True),
    "DNA": ([Segment(_nucleotides(300, 1), "DNA")], f"<DNA>{_nucleotides(300, 1).lower()}<eos>", False),
    "RNA": (
        [Segment(_nucleotides(120, 2).replace("T", "U"), "RNA")],
        f"<RNA>{_nucleotides(120, 2).lower()}<eos>",
        False,
    ),
    "complex": (
        [Segment(_protein(150), "protein"), Segment(_nucleotides(40, 3), "DNA")],
        f"<protein>{_protein(150)}<eos><DNA>{_nucleotides(40, 3).lower()}<eos>",
        False,
    ),
}


def _random_model_dir(path):
    """A 2-layer model (width 64, 4 heads of 16) with every weight drawn at random, saved as obte saves models."""
    torch.manual_seed(0)
    model = ObteModel(ObteConfig(vocab_size=64, width=64, n_layers=2, n_heads=4, max_positions=512))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.ndim == 1:  # LayerNorm weights: around 1, some negative
                weight.copy_(torch.randn_like(weight) * 0.6 + 0.8)
            elif name == "embed.weight":
                weight.normal_()
            else:
                weight.normal_(std=weight.shape[1] ** -0.5)
    save_model(path, model, ResidueTokenizer())
    return path


@pytest.fixture(scope="module", params=["bundled", "random"])
def exported(request, tmp_path_factory):
    """(obte model directory, its export)."""
    if request.param == "bundled":
        source = default_backbone_dir()
        if source is None:
            pytest.skip("this installation has no bundled backbone")
    else:
        source = _random_model_dir(tmp_path_factory.mktemp("random") / "model")
    out = tmp_path_factory.mktemp("export") / f"{request.param}-hf"
    export_hf(source, out)
    return source, out


@pytest.fixture(scope="module")
def models(exported):
    """obte's model and tokenizer, the export as EsmForMaskedLM and its tokenizer (float32, eval)."""
    source, out = exported
    loaded = load_model(source)
    hf = transformers.EsmForMaskedLM.from_pretrained(out).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    return loaded.model, loaded.tokenizer, hf, tokenizer


@pytest.fixture(scope="module")
def float64(models):
    """obte's model and the export's, in float64."""
    return copy.deepcopy(models[0]).double(), copy.deepcopy(models[2]).double()


def _obte_forward(model, ids):
    with torch.no_grad():
        hidden = model(ids).hidden
        return model.logits(hidden), hidden


def _hf_forward(model, ids, attention_mask=None):
    with torch.no_grad():
        output = model(ids, attention_mask=attention_mask, output_hidden_states=True)
    return output.logits, output.hidden_states[-1]


@pytest.mark.parametrize("name", list(INPUTS))
def test_the_tokenizer_gives_obtes_ids(models, name):
    _, obte_tokenizer, _, tokenizer = models
    segments, text, special = INPUTS[name]
    ids = tokenizer(text, add_special_tokens=special)["input_ids"]
    assert ids == obte_tokenizer.encode_one(segments).ids.tolist()
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == f"<{segments[0].molecule}>" and tokens[-1] == "<eos>"


@pytest.mark.parametrize("name", list(INPUTS))
def test_logits_and_hidden_states_are_obtes_in_float64(models, float64, name):
    ids = torch.tensor(models[1].encode_one(INPUTS[name][0]).ids)[None]
    logits, hidden = _obte_forward(float64[0], ids)
    hf_logits, hf_hidden = _hf_forward(float64[1], ids)
    assert hf_logits.dtype == torch.float64
    assert (hf_hidden - hidden).abs().max().item() <= TOLERANCE
    assert (hf_logits - logits).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("name", ["protein", "DNA"])
def test_float32_export_adds_no_more_rounding_than_obtes_own_float32(models, float64, name):
    """Against obte's float64 numbers, the float32 export may differ by the float64 export's difference plus
    twice the error of obte's own float32 forward pass."""
    model, obte_tokenizer, hf, _ = models
    ids = torch.tensor(obte_tokenizer.encode_one(INPUTS[name][0]).ids)[None]
    reference = _obte_forward(float64[0], ids)
    exported64 = _hf_forward(float64[1], ids)
    own = _obte_forward(model, ids)
    exported = _hf_forward(hf, ids)
    assert exported[0].dtype == torch.float32

    def distance(a, b):
        return (a.double() - b).abs().max().item()

    for ours, theirs, theirs64, exact in zip(own, exported, exported64, reference):
        assert distance(theirs, exact) <= distance(theirs64, exact) + 2 * distance(ours, exact)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_a_padded_batch_gives_each_sequence_its_own_logits(exported, models, float64, implementation):
    """The tokenizer pads a batch; ESM's attention mask keeps padding out of every real token's attention."""
    tokenizer = models[3]
    hf = transformers.EsmForMaskedLM.from_pretrained(exported[1], attn_implementation=implementation).eval().double()
    texts = ["<DNA>" + _nucleotides(60, 4).lower() + "<eos>", "<protein>" + _protein(200) + "<eos>"]
    batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    logits, _ = _hf_forward(hf, batch["input_ids"], batch["attention_mask"])
    for row, length in enumerate(batch["attention_mask"].sum(1).tolist()):
        expected, _ = _obte_forward(float64[0], batch["input_ids"][row : row + 1, :length])
        assert (logits[row, :length] - expected[0]).abs().max().item() <= TOLERANCE


def test_auto_classes_load_with_no_remote_code(exported, models):
    _, out = exported
    model, obte_tokenizer, hf, _ = models
    config = transformers.AutoConfig.from_pretrained(out)
    assert config.model_type == "esm" and not config.tie_word_embeddings and not config.token_dropout
    assert config.vocab_size == model.config.vocab_size and config.hidden_size == model.config.width
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert type(tokenizer).__name__ == "EsmTokenizer" and len(tokenizer) == model.config.vocab_size
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        obte_tokenizer.pad_id,
        obte_tokenizer.mask_id,
        obte_tokenizer.eos_id,
        obte_tokenizer.unk_id,
    )
    assert tokenizer("MK<mask>V")["input_ids"][3] == obte_tokenizer.mask_id
    assert type(transformers.AutoModelForMaskedLM.from_pretrained(out)).__name__ == "EsmForMaskedLM"
    encoder = transformers.AutoModel.from_pretrained(out, add_pooling_layer=False).eval()
    assert type(encoder).__name__ == "EsmModel"
    ids = torch.tensor(obte_tokenizer.encode_one(INPUTS["complex"][0]).ids)[None]
    with torch.no_grad():
        assert torch.equal(encoder(ids).last_hidden_state, hf(ids, output_hidden_states=True).hidden_states[-1])


def test_rotary_angles_are_obtes_bit_for_bit(models):
    model, _, hf, _ = models
    positions = torch.arange(model.config.max_positions)[None]
    cos, sin = Rotary(model.config.head_dim, model.config.rope_theta, model.config.rope_table)(
        positions_from_doc_ids(torch.zeros_like(positions))
    )
    hf_cos, hf_sin = hf.esm.rotary_embeddings(torch.zeros(1, dtype=torch.float32), positions)
    half = model.config.head_dim // 2
    assert torch.equal(hf_cos[0, :, :half], cos[0, 0]) and torch.equal(hf_cos[0, :, half:], cos[0, 0])
    assert torch.equal(hf_sin[0, :, :half], sin[0, 0]) and torch.equal(hf_sin[0, :, half:], sin[0, 0])


def test_the_export_says_how_to_feed_it_and_is_obtes_own_output(exported, models):
    _, out = exported
    _, obte_tokenizer, _, tokenizer = models
    marker = json.loads((out / EXPORT_FILE).read_text())
    assert marker["format"] == EXPORT_FORMAT and obte_output_kind(out) == "a Hugging Face export"
    assert marker["nucleic_letters"] == {"A": "a", "C": "c", "G": "g", "T": "t"}
    assert {int(i): token for i, token in marker["tokens"].items()} == {
        i: tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))
    }
    card = (out / "README.md").read_text()
    assert "lower-case" in card and "<DNA>acgt<eos>" in card and "What differs from obte" in card


def test_models_esm_cannot_compute_are_refused_naming_the_reason(tmp_path):
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    residue = ResidueTokenizer()
    for field, value in (("mlp", "swiglu"), ("norm", "omnibiote"), ("rope", "cosine")):
        config = ObteConfig(vocab_size=64, width=64, n_layers=1, n_heads=4, **{field: value})
        with pytest.raises(InputError, match=f"architecture.{field} is '{value}'"):
            check_exportable(config, residue, "m")
    with pytest.raises(InputError, match="cannot express BPE"):
        check_exportable(ObteConfig(vocab_size=65536), load_tokenizer("omnibiote-mixed"), "m")
    model = ObteModel(ObteConfig(vocab_size=64, width=64, n_layers=1, n_heads=4))
    with torch.no_grad():
        model.ln_f.weight[5] = 0.0
    with pytest.raises(InputError, match="final LayerNorm weight is 0 at column 5"):
        esm_state_dict(model, "m")
