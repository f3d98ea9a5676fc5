"""`obte convert`: released-OmniBioTE-style pickles → obte models, checked against the reference equations.

The pickles are built here from classes with the reference's qualified names (module ``model``), so the
files have the released layout; their forward passes are written from the equations in
``../shared/notes/omnibiote-reference.md`` §2, independently of obte's model code.
"""

import math
import pickle
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import obte
from torch import nn

from obte_cli.engine.affinity.ensemble import load_affinity_model
from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.model.omnibiote_convert import extract, read_checkpoint

# ---- the reference classes, pickled under the module name "model" as the released files are ----
reference = types.ModuleType("model")


@dataclass
class GPTConfig:
    vocab_size: int = 49
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    block_size: int = 32
    version: int = 2


class LayerNorm(nn.Module):  # v2: alpha * (x - mean) / (unbiased std + 1e-5) + gamma
    def __init__(self, d):
        super().__init__()
        self.alpha = nn.Parameter(1 + 0.1 * torch.randn(d))
        self.gamma = nn.Parameter(0.1 * torch.randn(d))

    def forward(self, x):
        return self.alpha * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5) + self.gamma


class V1LayerNorm(nn.Module):  # v1: weight-only F.layer_norm
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(d))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, None, 1e-5)


def rope_table(hd, ctx):
    freqs = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    return torch.polar(torch.ones(ctx, hd // 2), torch.outer(torch.arange(ctx).float(), freqs))  # complex64


class CausalSelfAttention(nn.Module):  # non-causal despite the name, as the reference
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=False)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.register_buffer("freqs_cis", rope_table(c.n_embd // c.n_head, c.block_size))

    def forward(self, x):
        B, T, D = x.shape
        H = self.c.n_head
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = (t.view(B, T, H, D // H) for t in (q, k, v))
        f = self.freqs_cis[:T]
        if f.is_complex():  # LLaMA apply_rotary_emb on interleaved pairs

            def rot(t):
                return torch.view_as_real(
                    torch.view_as_complex(t.float().reshape(*t.shape[:-1], -1, 2)) * f[None, :, None]
                ).flatten(3)
        else:  # bf16-cast buffer: real part only → both members of a pair scaled by cos

            def rot(t):
                return (t.float().reshape(*t.shape[:-1], -1, 2) * f.float()[None, :, None, :, None]).flatten(3)

        q, k = rot(q).transpose(1, 2), rot(k).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (8 / D)
        y = att.softmax(-1) @ v.transpose(1, 2)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.v2 = c.version == 2
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=False)
        self.c_proj = nn.Linear(2 * c.n_embd if self.v2 else 4 * c.n_embd, c.n_embd, bias=False)

    def forward(self, x):
        if self.v2:
            h, gate = self.c_fc(x).chunk(2, dim=-1)
            return self.c_proj(h * F.silu(gate))
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        norm = LayerNorm if c.version == 2 else V1LayerNorm
        self.ln_1, self.attn, self.ln_2, self.mlp = norm(c.n_embd), CausalSelfAttention(c), norm(c.n_embd), MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class OmniBioTA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        norm = LayerNorm if c.version == 2 else V1LayerNorm
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(c.vocab_size, c.n_embd),
                h=nn.ModuleList(Block(c) for _ in range(c.n_layer)),
                ln_f=norm(c.n_embd),
            )
        )
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        nn.init.normal_(self.lm_head.weight, std=0.5)

    def embed(self, ids):
        x = self.transformer.wte(ids)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, ids):
        emb = self.embed(ids)
        d = self.config.n_embd
        return self.lm_head(emb) * (32 / d if self.config.version == 2 else 24 / d)


class OmniBindER(nn.Module):
    def __init__(self, c, stats):
        super().__init__()
        self.omnibiota = OmniBioTA(c)
        self.proj_head = nn.Linear(c.n_embd, 1)
        nn.init.normal_(self.proj_head.weight, std=0.3)
        self.stats = stats  # numpy, not in the state dict

    def forward(self, ids):
        d = self.omnibiota.config.n_embd
        return self.proj_head(self.omnibiota.embed(ids)[:, 0]) * (1024 / d) * self.stats[1] + self.stats[0]


for cls in (GPTConfig, LayerNorm, V1LayerNorm, CausalSelfAttention, MLP, Block, OmniBioTA, OmniBindER):
    cls.__module__ = "model"
    cls.__qualname__ = cls.__name__
    setattr(reference, cls.__name__, cls)


@pytest.fixture(autouse=True)
def reference_module():
    sys.modules["model"] = reference  # only torch.save needs it; loading must never import it
    yield
    sys.modules.pop("model", None)


def _save(obj, path):
    torch.save(obj, path)
    sys.modules.pop("model", None)  # prove conversion works without the classes importable
    return path


def _inputs(vocab, ids_from):
    torch.manual_seed(1)
    return torch.randint(ids_from[0], ids_from[1], (3, 17))


@pytest.mark.parametrize("layout", ["v2-char", "v2-char-bf16-rope", "v1-mixed"])
def test_converted_models_compute_the_reference_forward(tmp_path, layout):
    torch.manual_seed(0)
    if layout.startswith("v1"):
        c = GPTConfig(vocab_size=65536, n_embd=48, n_layer=2, n_head=3, block_size=32, version=1)
    else:
        c = GPTConfig(vocab_size=49, n_embd=64, n_layer=2, n_head=4, block_size=32, version=2)
    module = OmniBioTA(c).eval()
    if layout.endswith("bf16-rope"):
        for block in module.transformer.h:  # what model.to(torch.bfloat16) does to the complex buffer
            block.attn.freqs_cis = block.attn.freqs_cis.real.to(torch.bfloat16)
    ids = _inputs(c.vocab_size, (4, 48) if c.vocab_size == 49 else (20, 60000))
    with torch.no_grad():
        expected = module(ids)
    path = _save(module, tmp_path / "omnibiota.pt")
    result = obte("convert", path, "-o", tmp_path / "converted")
    assert result.exit_code == 0, result.output
    loaded = load_model(tmp_path / "converted")
    assert (
        loaded.model.config.rope
        == {"v2-char": "rotary", "v2-char-bf16-rope": "cosine-bf16", "v1-mixed": "rotary"}[layout]
    )
    assert loaded.tokenizer.vocab_size <= c.vocab_size
    with torch.no_grad():
        got = loaded.model.logits(loaded.model(ids).hidden)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_character_layout_tokenizes_like_the_reference(tmp_path):
    module = OmniBioTA(GPTConfig())
    _save(module, tmp_path / "char.pt")
    assert obte("convert", tmp_path / "char.pt", "-o", tmp_path / "m").exit_code == 0
    tok = load_model(tmp_path / "m").tokenizer
    from obte_cli.engine.tokenizers.base import Segment

    assert tok.encode_one([Segment("ATCG", "DNA")]).ids.tolist() == [9, 4, 5, 6, 7, 3]
    assert tok.encode_one([Segment("MA", "protein")]).ids.tolist() == [
        48,
        23 + "ARNDCQEGHILKMFPSTWYV".index("M"),
        23,
        3,
    ]


def test_dg_model_converts_with_its_head_and_target_statistics(tmp_path):
    torch.manual_seed(0)
    c = GPTConfig(vocab_size=49, n_embd=64, n_layer=2, n_head=4, block_size=64)
    binder = OmniBindER(c, np.array([-9.8, 2.3])).eval()
    from obte_cli.engine.model.omnibiote_convert import reference_char_vocabulary
    from obte_cli.engine.tokenizers.base import Segment
    from obte_cli.engine.tokenizers.residue import ResidueTokenizer

    tok = ResidueTokenizer(reference_char_vocabulary())
    ids = torch.as_tensor(tok.encode_one([Segment("MKRLAVGG", "protein"), Segment("ACGTTA", "DNA")]).ids)[None]
    with torch.no_grad():
        expected = float(binder(ids))
    path = _save(binder, tmp_path / "omnibinder.pt")
    assert obte("convert", path, "-o", tmp_path / "dg").exit_code == 0
    ensemble = load_affinity_model(tmp_path / "dg")
    prepared, _ = ensemble.prepare("MKRLAVGG", "ACGTTA")
    assert list(prepared.token_ids) == ids[0].tolist()
    dg, _ = ensemble.predict([prepared])
    assert abs(dg[0] - expected) < 1e-4


def test_state_dict_files_convert_too(tmp_path):
    torch.manual_seed(0)
    module = OmniBioTA(GPTConfig())
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    result = obte("convert", tmp_path / "sd.pt", "-o", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "m").model.config.n_heads == 4  # from freqs_cis: head_dim / 2 = 8


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"weights": torch.zeros(2), "payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(ModelFormatError, match=r"refused to load: the pickle names (posix|os|nt)\.system"):
        read_checkpoint(tmp_path / "evil.pt")
    result = obte("convert", tmp_path / "evil.pt", "-o", tmp_path / "m")
    assert result.exit_code == 1 and "refused to load" in result.stderr and "nothing was executed" in result.stderr
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "m").exists()


def test_unknown_class_outside_the_reference_modules_is_refused(tmp_path):
    torch.save({"x": pickle.loads(pickle.dumps(types.SimpleNamespace(a=1)))}, tmp_path / "ns.pt")
    with pytest.raises(ModelFormatError, match="types.SimpleNamespace"):
        read_checkpoint(tmp_path / "ns.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    assert "not a torch checkpoint" in obte("convert", tmp_path / "junk.pt", "-o", tmp_path / "m").stderr


def test_extract_reads_module_attributes_as_data(tmp_path):
    module = OmniBioTA(GPTConfig(n_head=2))
    extracted = extract(read_checkpoint(_save(module, tmp_path / "m.pt")))
    assert extracted.config["n_head"] == 2 and extracted.config["n_embd"] == 64
    assert "transformer.h.1.attn.freqs_cis" in extracted.tensors
    assert math.isclose(
        float(extracted.tensors["lm_head.weight"].std()), float(module.lm_head.weight.detach().std()), rel_tol=1e-6
    )
