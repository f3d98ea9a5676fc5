"""The attention probe: its maps are the model's own attention probabilities (alone or packed), and it learns a
contact signal that the maps carry."""

import numpy as np
import torch
from conftest import contact_site

from obte_cli.engine.contacts.fitting import ProbeSettings, train_probe
from obte_cli.engine.contacts.probe import (
    AttentionProbe,
    attention_maps,
    predict_probe,
    probe_features,
)
from obte_cli.engine.contacts.sites import encode_site
from obte_cli.engine.core.metrics import roc_auc
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.tokenizers.loading import load_tokenizer


def _micro(context=256):
    torch.manual_seed(0)
    tokenizer = load_tokenizer("residue")
    return ObteModel(
        preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=context)
    ).eval(), tokenizer


def test_attention_maps_reproduce_the_models_attention():
    model, tokenizer = _micro()
    encoding = encode_site(tokenizer, contact_site("MKRLAVW", ("ACGTAC",)), 64)
    maps = attention_maps(model, encoding.ids)
    config = model.config
    assert maps.shape == (config.n_layers * config.n_heads, len(encoding), len(encoding))
    assert torch.allclose(maps.sum(-1), torch.ones(maps.shape[:2]), atol=1e-5)
    captured = []
    handle = model.blocks[1].attn.register_forward_hook(lambda mod, args, out: captured.append((args[0], out)))
    with torch.no_grad():
        model(torch.as_tensor(encoding.ids)[None])
        handle.remove()
        x, out = captured[0]  # the second block's attention: its input and output
        v = (
            model.blocks[1]
            .attn.qkv(x)[0, :, 2 * config.width :]
            .view(-1, config.n_heads, config.head_dim)
            .transpose(0, 1)
        )
        mixed = (maps[config.n_heads : 2 * config.n_heads] @ v).transpose(0, 1).reshape(-1, config.width)
        assert torch.allclose(model.blocks[1].attn.proj(mixed), out[0], atol=1e-5)
    stack, tokens = probe_features(model, encoding)
    assert stack.shape == (2 * config.n_layers * config.n_heads, 7, 6) and len(tokens) == 7
    assert AttentionProbe(stack.shape[0], 3)(stack).shape == (7, 3)


def test_attention_maps_are_the_attention_modules_own_probabilities_when_packed():
    model, _ = _micro()
    with torch.no_grad():  # queries start at zero (uniform attention): give them something to say
        for block in model.blocks:
            block.attn.qkv.weight[: model.config.width].normal_()
    ids = torch.arange(5, 25)[None]
    doc_ids = torch.tensor([[0] * 12 + [1] * 8])  # two sequences packed in one row
    packed = model.attention_probabilities(ids, doc_ids)[0]
    first, second = (model.attention_probabilities(ids[:, s])[0] for s in (slice(0, 12), slice(12, 20)))
    assert torch.allclose(packed[..., :12, :12], first, atol=1e-6) and torch.allclose(
        packed[..., 12:, 12:], second, atol=1e-6
    )
    assert packed[..., :12, 12:].max() == 0 and packed[..., 12:, :12].max() == 0  # never across sequences
    assert packed.std(dim=-1).max() > 0.01  # not uniform


def test_the_probe_learns_a_contact_signal_its_attention_maps_carry():
    model, tokenizer = _micro()
    with torch.no_grad():  # random queries: a fresh model attends uniformly and its maps carry nothing
        for block in model.blocks:
            block.attn.qkv.weight[: model.config.width].normal_()
    rng = np.random.default_rng(0)
    sites = []
    for i in range(8):  # toy contacts: the basic residues (what the query of a token sees is its identity)
        protein = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 30))
        labels = np.isin(list(protein), list("KRH"))[:, None].repeat(3, 1).astype(int)
        sites.append(contact_site(protein, ("".join(rng.choice(list("ACGT"), 10)),), labels, f"toy{i}:A"))
    encodings = [encode_site(tokenizer, s, 256) for s in sites]
    losses = []
    probe = train_probe(
        model,
        sites,
        encodings,
        (4.0, 6.0, 8.0),
        ProbeSettings(epochs=10, lr=1e-2),
        on_step=lambda record: losses.append(record["loss"]),
    )
    assert len(losses) == 10 * len(sites)
    assert np.mean(losses[-len(sites) :]) < 0.6 * np.mean(losses[: len(sites)])
    predicted = np.concatenate(predict_probe(model, probe, encodings, [30] * len(sites)))
    assert roc_auc(np.concatenate([s.labels[:, 0] for s in sites]), predicted[:, 0]) > 0.9
