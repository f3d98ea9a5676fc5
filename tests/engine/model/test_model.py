import numpy as np
import pytest
import torch
import torch.nn.functional as F

from obte_cli.engine.model.encoder import (
    PRESETS,
    ObteConfig,
    ObteModel,
    Packing,
    apply_rotary,
    block_diagonal_mask,
    non_embedding_parameters,
    positions_from_doc_ids,
    preset_config,
    row_spans,
    set_context,
)
from obte_cli.engine.model.packing import pack, unpack
from obte_cli.engine.tokenizers.base import Segment


def trained_like(config: ObteConfig, seed: int = 0) -> ObteModel:
    """A model with every weight random (μP zero-inits would hide bugs in attention and readout)."""
    torch.manual_seed(seed)
    model = ObteModel(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.normal_(std=0.5 / p.shape[1] ** 0.5)
        model.embed.weight.normal_()
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    return trained_like(ObteConfig(vocab_size=64, width=64, n_layers=2, n_heads=4))


def test_output_shapes_and_layers(tiny):
    ids = torch.randint(4, 49, (3, 17))
    out = tiny(ids, layers=(0, 1, -1))
    assert out.hidden.shape == (3, 17, 64)
    assert set(out.layers) == {0, 1, 2}
    assert torch.equal(out.layers[2], out.hidden)
    assert tiny.logits(out.hidden).shape == (3, 17, 64)


def test_presets_match_their_documented_shapes():
    for name, shape in PRESETS.items():
        c = preset_config(name, vocab_size=64)
        assert c.width == shape["width"]
        if name not in ("micro", "tiny"):  # the CPU presets are deliberately shallow-and-narrow
            assert c.width == 128 * c.n_layers  # aspect ratio of the OmniBioTE family
    assert preset_config("small", 64).head_dim == 128


def test_parameter_count_formula_matches_the_model():
    c = preset_config("tiny", vocab_size=64)
    assert ObteModel(c).num_parameters() == non_embedding_parameters(c)


def test_no_biases():
    model = ObteModel(preset_config("tiny", vocab_size=64))
    assert not any(name.endswith(".bias") for name, _ in model.named_parameters())


def test_packed_output_equals_output_alone(tiny, residue_tokenizer, pronab):
    """Real sequences: each one's hidden states are the same alone or packed with others (1e-5)."""
    encs = []
    for entry in list(pronab.values())[:6]:
        protein = entry["Sequence"][:60]
        na = entry["binding data"][0][0][:30]
        encs.append(residue_tokenizer.encode_one([Segment(protein, "protein"), Segment(na, "DNA")], on_unknown="unk"))
    batch = pack([e.ids for e in encs], context=256, pad_id=residue_tokenizer.pad_id)
    assert batch.ids.shape[0] < len(encs)  # really packed
    with torch.no_grad():
        packed = unpack(tiny(batch.ids, batch.doc_ids).hidden, batch)
        for enc, together in zip(encs, packed):
            alone = tiny(torch.as_tensor(enc.ids)[None]).hidden[0]
            torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_padding_is_never_attended(tiny):
    ids = torch.randint(4, 49, (1, 12))
    doc = torch.zeros_like(ids)
    padded_ids = torch.cat([ids, torch.randint(0, 64, (1, 5))], dim=1)  # arbitrary junk in the padding
    padded_doc = torch.cat([doc, torch.full((1, 5), -1)], dim=1)
    with torch.no_grad():
        a = tiny(ids, doc).hidden
        b = tiny(padded_ids, padded_doc).hidden[:, :12]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_mask_and_positions_for_packed_rows():
    doc = torch.tensor([[0, 0, 0, 1, 1, -1]])
    assert positions_from_doc_ids(doc).tolist() == [[0, 1, 2, 0, 1, 0]]
    mask = block_diagonal_mask(doc)[0, 0]
    assert mask[0, :3].all() and not mask[0, 3:].any()
    assert mask[3, 3:5].all() and not mask[3, 5]
    assert block_diagonal_mask(torch.zeros(2, 5, dtype=torch.long)) is None  # fast path: no mask


def test_row_spans_and_when_attention_is_split():
    doc = torch.tensor([[0, 0, 0, 1, 1, -1], [0, 0, 0, 0, 0, 0]])
    assert row_spans(doc) == [[(0, 3), (3, 5), (5, 6)], [(0, 6)]]
    packing = Packing(doc)
    assert packing.packed and packing.split(training=False) is False  # gradients on: the masked kernel
    with torch.no_grad():
        assert packing.split(training=False) is True
        assert packing.split(training=True) is False  # dropout would differ
        assert Packing(torch.zeros(2, 5, dtype=torch.long)).split(training=False) is False  # no mask needed at all
    assert Packing(torch.zeros(2, 5, dtype=torch.long)).mask is None


def test_split_inference_attention_equals_the_masked_kernel(monkeypatch):
    model = trained_like(preset_config("micro", 64, max_positions=64))
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(4, 64, (3, 40), generator=generator)
    doc = torch.zeros(3, 40, dtype=torch.long)
    doc[0, 11:] = 1
    doc[0, 30:] = 2
    doc[1, 37:] = -1  # one sequence and padding
    doc[2, 1:] = 1  # a one-token sequence
    with torch.inference_mode():
        split = model(ids, doc, layers=(1, 2)).layers
        monkeypatch.setattr(Packing, "split", lambda self, training: False)
        masked = model(ids, doc, layers=(1, 2)).layers
    for layer in (1, 2):
        torch.testing.assert_close(split[layer], masked[layer], atol=2e-5, rtol=0)


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    inv_freq = 10000 ** (-torch.arange(0, 16, 2) / 16)

    def rotated(x, pos):
        angles = torch.tensor([[pos]], dtype=torch.float32)[..., None] * inv_freq
        return apply_rotary(x, angles.cos()[:, None], angles.sin()[:, None])

    def score(m, n):
        return (rotated(q, m) * rotated(k, n)).sum().item()

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-4)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)
    assert torch.allclose(rotated(q, 7).norm(), q.norm())  # rotation, not scaling


def test_rotary_is_interleaved_pairs():
    x = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
    angles = torch.tensor([[1.0]])[..., None] * torch.tensor([1.0, 0.0])
    out = apply_rotary(x, angles.cos()[:, None], angles.sin()[:, None])
    assert out[0, 0, 0].tolist() == pytest.approx([np.cos(1.0), np.sin(1.0), 0.0, 0.0])


def _written_out_rotation(x, cos, sin):
    """The rotation of each interleaved pair, term by term (the formulation before the complex one)."""
    x0, x1 = x.float()[..., 0::2], x.float()[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2).type_as(x)


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "odd-offset", "bf16"])
def test_complex_rotary_equals_the_written_out_rotation(layout):
    """Values and gradients, for the (B, H, T, hd) views attention passes and for ones complex views refuse."""
    torch.manual_seed(0)
    B, H, T, hd = 2, 3, 5, 8
    angles = torch.rand(B, T, hd // 2) * 50
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    base = torch.randn(B, T, H, hd + 1)
    if layout == "transposed":
        x = base[..., :hd].contiguous().transpose(1, 2)  # as SelfAttention.heads makes them
    elif layout == "odd-offset":
        x = base[..., 1:].transpose(1, 2)  # odd storage offset and strides: no complex view possible
    else:
        x = base[..., :hd].transpose(1, 2).contiguous()
    if layout == "bf16":
        x = x.to(torch.bfloat16)
    a = x.detach().clone().requires_grad_(True)
    b = x.detach().clone().requires_grad_(True)
    fast, slow = apply_rotary(a, cos, sin), _written_out_rotation(b, cos, sin)
    tolerance = {"atol": 1e-2, "rtol": 1e-2} if layout == "bf16" else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(fast, slow, **tolerance)
    weights = torch.randn(fast.shape)
    (fast.float() * weights).sum().backward()
    (slow.float() * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, **tolerance)
    assert fast.dtype == x.dtype and fast.shape == x.shape


def test_mlm_loss_reads_out_only_masked_positions(tiny):
    torch.manual_seed(1)
    ids = torch.randint(4, 49, (2, 20))
    targets = torch.full_like(ids, -100)
    targets[0, 3], targets[1, 7], targets[1, 8] = 10, 11, 12
    loss, n = tiny.mlm_loss(ids, targets)
    with torch.no_grad():
        full = tiny.logits(tiny(ids).hidden)  # the whole vocabulary everywhere, for reference
    expected = F.cross_entropy(full[targets != -100], targets[targets != -100])
    assert n.item() == 3
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_mlm_loss_backpropagates_to_all_weights():
    model = ObteModel(ObteConfig(vocab_size=64, width=32, n_layers=1, n_heads=4))
    ids = torch.randint(4, 49, (2, 10))
    targets = torch.where(torch.rand(ids.shape) < 0.5, ids, torch.full_like(ids, -100))
    targets[0, 0] = 5
    loss, _ = model.mlm_loss(ids, targets)
    loss.backward()
    assert model.readout.weight.grad.abs().sum() > 0  # zero-initialised readout still learns


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="not divisible"):
        ObteConfig(vocab_size=64, width=100, n_heads=8)
    with pytest.raises(ValueError, match="unknown architecture field"):
        ObteConfig.from_dict({"vocab_size": 64, "hidden": 3})


def test_pack_rejects_overlong_sequences():
    with pytest.raises(ValueError, match="does not fit"):
        pack([np.arange(10)], context=8, pad_id=0)


def test_set_context_changes_only_the_limit_so_the_first_positions_encode_as_before():
    """Rotary positions carry no weights: a longer context keeps every parameter, and a sequence that fit the old
    context encodes exactly as before (each position's rotation depends on the position alone)."""
    model = trained_like(preset_config("micro", 64, max_positions=32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(5, 40, (1, 32))
    short = model(ids).hidden
    set_context(model, 96)
    assert model.config.max_positions == 96
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.allclose(model(ids).hidden, short)
    assert model(torch.randint(5, 40, (1, 96))).hidden.shape == (1, 96, model.config.width)
    with pytest.raises(ValueError, match="positive"):
        set_context(model, 0)
