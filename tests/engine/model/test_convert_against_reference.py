"""`obte convert` checked against the OmniBioTE authors' own model code (issue #30 §2).

The oracle is the reference's unmodified ``model.py`` files in ``../shared/reference/omnibiote/`` (MIT; v1 needs
the ``mup`` package). Small models with random weights are built here the way the reference's scripts build
them, saved the way the releases were saved, converted by ``obte convert`` in a subprocess in which none of the
reference's modules can be imported, and compared on the same token ids with the reference's own forward pass
run in float32 on the values stored in the file:

* v1 (``training/train_encoder.py``): the model, then the μP base (24 wide, 3 heads) and delta (48 wide, 12 heads)
  models from the same config object, ``set_base_shapes``; widths 96/4, 128/4 and 1024/8 heads converted with no
  ``--n-heads``: the right model, or (for files whose weights contradict each other) one line naming both values;
* v2 (``src/model.py``): single-character and mixed-BPE (4,096 ids) backbones, the ΔG model ``OmniBindER`` with
  its ``stats``; whole modules in float32 and in bf16 (``model.to(torch.bfloat16)``, which also keeps only the
  real part of the complex RoPE buffer), a ``torch.compile`` wrapper, state dicts with ``_orig_mod.`` and
  ``module.`` prefixes; a head size of 128 at 1,024 positions, where the reference's float32 rotary table
  differs from a float64 one;
* ΔG through ``obte affinity`` against ``OmniBindER.forward`` on the token layout of the reference's
  ``evals/pronab.py`` (``<protein>SEQ<EOS>`` then ``<DNA>s1<EOS><DNA>s2<EOS>``).

"Relative error" is max |obte − reference| / max |reference| over a tensor. The sentencepiece models for the
4,096-id layout are trained here (two 2,048-piece BPE models, protein ids offset by 2,048 as in the reference's
``OmniTokenizer``); the released ``genbank-2k.model`` / ``uniref-2k.model`` are not available to these tests.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import types
import warnings
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, obte
from torch import nn

from obte_cli.engine.affinity.ensemble import load_affinity_model
from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.model.omnibiote_convert import read_checkpoint

REFERENCE = REPO.parent / "shared" / "reference" / "omnibiote"
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "v2-src" / "model.py").is_file(),
    reason=f"the OmniBioTE reference code is not in {REFERENCE}",
)
try:
    import mup
except ImportError:  # only v1's model.py needs it
    mup = None

TOLERANCE = 1e-5  # relative error of hidden states and logits; kcal/mol for ΔG
TAGS = ["<EOS>", "<DNA>", "<mRNA>", "<RNA>", "<rRNA>", "<tRNA>", "<cRNA>", "<ss-RNA>", "<ss-DNA>", "<ds-mRNA>"]
TAGS += ["<ds-rRNA>", "<ds-RNA>", "<ms-DNA>", "<ms-RNA>", "<ds-cRNA>", "<protein>", "<antibody>"]


# ---- the reference's modules, loaded under their upstream names ----------------------------------------
def _module_from(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    with _importable({name: module}):
        spec.loader.exec_module(module)
    return module


@contextmanager
def _importable(modules: dict):
    """``modules`` in sys.modules for the duration (torch.save/torch.load of a whole module need its class
    importable under the name it was saved with, ``model``), the previous entries restored afterwards."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


@functools.cache
def reference(which: str) -> dict:
    """{"model": module[, "metrics": module]}: "v1" (training/model.py @ 54aface), "v2" (src/model.py, with
    its metrics.py), or {"tokenizer": OmniTokenizer.py}."""
    if which == "tokenizer":
        return {"OmniTokenizer": _module_from(REFERENCE / "v2-src" / "OmniTokenizer.py", "OmniTokenizer")}
    if which == "v1":
        return {"model": _module_from(REFERENCE / "v1" / "model.py", "model")}
    metrics = _module_from(REFERENCE / "v2-src" / "metrics.py", "metrics")
    with _importable({"metrics": metrics}):
        model = _module_from(REFERENCE / "v2-src" / "model.py", "model")
    return {"model": model, "metrics": metrics}


# ---- building models as the reference's scripts do ------------------------------------------------------
def _randomize(model: nn.Module, width: int) -> None:
    """Trained-looking weights where the reference's initialisation would hide errors: norm weights at 1 and
    biases at 0, the v2 readout at std 1e-5, and queries and keys so small that attention is nearly uniform
    (position errors then barely show); here queries and keys are 4× larger, so attention is peaked."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("attn.c_attn.weight"):
                p[: 2 * width] *= 4  # rows q | k | v
            elif name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", ".alpha")):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".gamma"):
                p.copy_(0.2 * torch.randn_like(p))
            elif name.endswith("lm_head.weight"):
                p.copy_(torch.randn_like(p) * width**-0.5)


def v1_model(width: int, heads: int, layers: int, vocab: int, context: int, seed: int = 0) -> nn.Module:
    """training/train_encoder.py (v1): the model, then the μP base and delta models from the same config object
    (so the model's config ends up saying 48 wide, 12 heads), then set_base_shapes."""
    torch.manual_seed(seed)
    ref = reference("v1")["model"]
    config = ref.OmniBioTAConfig()
    config.vocab_size, config.dropout, config.block_size = vocab, 0.1, context
    config.n_embd, config.n_layer, config.n_head = width, layers, heads
    config.flash, config.checkpoint_freq = True, 0
    model = ref.OmniBioTA(config)
    config.n_embd, config.n_head = 24, 3
    base = ref.OmniBioTA(config)
    config.n_embd, config.n_head = 48, 12
    delta = ref.OmniBioTA(config)
    mup.set_base_shapes(model, base, delta=delta)
    _randomize(model, width)
    return model.eval()


def v2_model(width, heads, layers, vocab, context, stats=None, seed=0) -> nn.Module:
    """src/model.py (v2): OmniBioTA, or OmniBindER (omnibiota + proj_head, ``stats`` a numpy attribute)."""
    torch.manual_seed(seed)
    ref = reference("v2")["model"]
    config = ref.OmniBioTAConfig(context_length=context, vocab_size=vocab, n_layer=layers, n_head=heads, n_embd=width)
    if stats is None:
        model = ref.OmniBioTA(config)
    else:
        model = ref.OmniBindER(config)
        model.stats = np.asarray(stats)
        nn.init.normal_(model.proj_head.weight, std=width**-0.5)
    _randomize(model, width)
    return model.eval()


def _bf16(model: nn.Module) -> nn.Module:
    """``model.to(torch.bfloat16)``, in place as the training scripts do (a deep copy would lose the
    ``infshape`` that mup's set_base_shapes attaches to v1's parameters)."""
    with warnings.catch_warnings():  # "Casting complex values to real discards the imaginary part": as released
        warnings.simplefilter("ignore", UserWarning)
        return model.to(torch.bfloat16)


def save_module(model: nn.Module, version: str, path: Path) -> Path:
    """``torch.save(model, path)``: the whole module, its classes under the module name ``model``."""
    with _importable(reference(version)):
        torch.save(model, path)
    return path


def load_module(version: str, path: Path) -> nn.Module:
    """The reference model from a saved file, in float32 (the stored values, upcast), unwrapped from
    ``torch.compile`` as the reference's evaluation scripts do."""
    with _importable(reference(version)):
        model = torch.load(path, map_location="cpu", weights_only=False)
    model = getattr(model, "_orig_mod", model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return model.float().eval()


def state_dict_with_prefix(model: nn.Module, prefix: str) -> OrderedDict:
    """What a ``torch.compile`` wrapper (``_orig_mod.``) or DDP (``module.``) gives as its state dict."""
    if prefix == "_orig_mod.":
        state = torch.compile(model).state_dict()
    else:
        holder = nn.Module()
        holder.module = model
        state = holder.state_dict()
    assert all(k.startswith(prefix) for k in state)
    return state


def train_sentencepiece(path: Path, letters: str, seed: int) -> Path:
    """A 2,048-piece BPE model with the reference's special symbols (<EOS> = 3, tags after it) and its
    dummy prefix (the ▁ piece the reference's tokenizer wrapper drops)."""
    import sentencepiece as spm

    rng = random.Random(seed)
    lines = ["".join(rng.choice(letters) for _ in range(rng.randint(50, 400))) for _ in range(600)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=2048,
        character_coverage=1.0,
        user_defined_symbols=TAGS,
        num_threads=1,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


# ---- the reference's forward -----------------------------------------------------------------------------
def reference_outputs(model: nn.Module, ids: torch.Tensor) -> dict:
    """Each block's output but the last, the final (normalised) embedding and the logits of the reference's
    forward (for OmniBindER: its backbone's), keyed as obte's ``layers``."""
    backbone = getattr(model, "omnibiota", model)
    captured = []
    hooks = [b.register_forward_hook(lambda m, i, o: captured.append(o)) for b in backbone.transformer.h]
    hooks.append(backbone.transformer.ln_f.register_forward_hook(lambda m, i, o: captured.append(o)))
    try:
        with torch.no_grad():
            logits = backbone(ids)
    finally:
        for h in hooks:
            h.remove()
    layers = len(backbone.transformer.h)
    out = {i: captured[i - 1] for i in range(1, layers)}
    out[layers] = captured[-1]
    out["logits"] = logits
    return out


def obte_outputs(directory: Path, ids: torch.Tensor) -> dict:
    model = load_model(directory).model.eval()
    layers = model.config.n_layers
    with torch.no_grad():
        result = model(ids, layers=tuple(range(1, layers + 1)))
        out = dict(result.layers)
        out["logits"] = model.logits(result.hidden)
    return out


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).abs().max() / want.double().abs().max())


# ---- the cases -------------------------------------------------------------------------------------------
@dataclass
class Case:
    version: str  # "v1" / "v2": which reference model.py made the file
    build: object  # () -> the reference model (in float32, before saving)
    save: str  # "fp32", "bf16", "compiled", "sd:_orig_mod.", "sd:module."
    vocab: int
    length: int  # tokens per compared sequence
    heads: int  # the model's real head count
    args: list = field(default_factory=list)  # extra `obte convert` arguments
    bpe: bool = False  # convert with --tokenizer genbank-2k.model --tokenizer uniref-2k.model
    refused: tuple = ()  # the conversion fails with one error line holding each of these


V2_CHAR = functools.partial(v2_model, 128, 2, 2, 49, 128)
V2_BPE = functools.partial(v2_model, 64, 2, 2, 4096, 128, seed=1)
V2_HEAD128 = functools.partial(v2_model, 256, 2, 1, 49, 1024, seed=2)
BINDER_CHAR = functools.partial(v2_model, 64, 2, 2, 49, 512, stats=[-9.31, 1.87], seed=3)
BINDER_BPE = functools.partial(v2_model, 64, 2, 2, 4096, 512, stats=[-10.2, 2.05], seed=4)
V1_96 = functools.partial(v1_model, 96, 4, 2, 65536, 64)
V1_96_CHAR = functools.partial(v1_model, 96, 4, 2, 49, 64, seed=5)
V1_128 = functools.partial(v1_model, 128, 4, 2, 49, 64, seed=6)
V1_1024 = functools.partial(v1_model, 1024, 8, 1, 49, 256, seed=7)


def _attention_says_12(model):
    model.transformer.h[1].attn.n_head = 12  # the module attribute the forward reshapes with
    return model


CASES = {
    "v2-char-fp32": Case("v2", V2_CHAR, "fp32", 49, 128, 2),
    "v2-char-bf16": Case("v2", V2_CHAR, "bf16", 49, 128, 2),
    "v2-char-compiled": Case("v2", V2_CHAR, "compiled", 49, 128, 2),
    "v2-char-state-dict-_orig_mod": Case("v2", V2_CHAR, "sd:_orig_mod.", 49, 128, 2),
    "v2-char-state-dict-module": Case("v2", V2_CHAR, "sd:module.", 49, 128, 2),
    "v2-bpe-fp32": Case("v2", V2_BPE, "fp32", 4096, 128, 2, bpe=True),
    "v2-bpe-bf16": Case("v2", V2_BPE, "bf16", 4096, 128, 2, bpe=True),
    "v2-head128-fp32": Case("v2", V2_HEAD128, "fp32", 49, 1024, 2),
    "v2-head128-bf16": Case("v2", V2_HEAD128, "bf16", 49, 1024, 2),
    "binder-char-fp32": Case("v2", BINDER_CHAR, "fp32", 49, 256, 2),
    "binder-bpe-bf16": Case("v2", BINDER_BPE, "bf16", 4096, 256, 2, bpe=True),
    "v1-96x4-bf16": Case("v1", V1_96, "bf16", 65536, 64, 4),
    "v1-128x4-fp32": Case("v1", V1_128, "fp32", 49, 64, 4),
    "v1-1024x8-bf16": Case("v1", V1_1024, "bf16", 49, 256, 8),
    "v1-96x4-state-dict-module-n-heads-4": Case("v1", V1_96_CHAR, "sd-no-freqs:module.", 49, 64, 4, ["--n-heads", "4"]),
    # what the weights cannot settle, or contradict, is refused in one line naming the values
    "v1-96x4-n-heads-12": Case(
        "v1", V1_96_CHAR, "fp32", 49, 64, 4, ["--n-heads", "12"], refused=("--n-heads 12", "4 heads")
    ),
    "v1-96x4-attention-says-12": Case(
        "v1", lambda: _attention_says_12(V1_96_CHAR()), "fp32", 49, 64, 4, refused=("n_head 12", "4 heads")
    ),
    "v1-96x4-state-dict-without-freqs": Case(
        "v1",
        V1_96_CHAR,
        "sd-no-freqs:module.",
        49,
        64,
        4,
        refused=("cannot tell the number of heads", "pass --n-heads"),
    ),
}
MATCHING = [name for name, case in CASES.items() if not case.refused]
BF16 = [name for name, case in CASES.items() if case.save == "bf16"]

CONVERT = """
import json, sys
for name in ("model", "metrics", "mup", "OmniTokenizer"):
    sys.modules[name] = None  # the reference's modules: any import of them fails in this process
from typer.testing import CliRunner
from obte_cli.app import app
runner, results = CliRunner(), {}
for name, args in json.loads(sys.argv[1]).items():
    result = runner.invoke(app, args)
    results[name] = {"exit_code": result.exit_code, "stderr": result.stderr, "exception": repr(result.exception)}
print("RESULTS " + json.dumps(results))
"""


def _save_case(case: Case, model: nn.Module, path: Path) -> Path:
    if case.save == "fp32":
        return save_module(model, case.version, path)
    if case.save == "bf16":
        return save_module(_bf16(model), case.version, path)
    if case.save == "compiled":
        return save_module(torch.compile(model), case.version, path)
    kind, prefix = case.save.split(":")
    state = state_dict_with_prefix(model, prefix)
    if kind == "sd-no-freqs":
        state = OrderedDict((k, v) for k, v in state.items() if not k.endswith("freqs_cis"))
    torch.save(state, path)
    return path


@dataclass
class Built:
    case: Case
    path: Path  # the reference file
    out: Path  # the converted model directory
    ids: torch.Tensor
    reference: nn.Module  # the reference model in float32 on the values the file stores
    result: dict  # exit_code, stderr of `obte convert`


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("omnibiote-2k")
    return [
        train_sentencepiece(folder / "genbank-2k.model", "ACGTN", seed=0),
        train_sentencepiece(folder / "uniref-2k.model", "ACDEFGHIKLMNPQRSTVWY", seed=1),
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tokenizer_files) -> dict[str, Built]:
    """Every case's file, and one `obte convert` per case, all run in one subprocess that cannot import the
    reference's modules (they are blocked in it, and its working directory and path hold none of them)."""
    if not (REFERENCE / "v2-src" / "model.py").is_file():
        pytest.skip(f"the OmniBioTE reference code is not in {REFERENCE}")
    folder = tmp_path_factory.mktemp("reference-files")
    cases = {name: case for name, case in CASES.items() if mup is not None or case.version != "v1"}
    jobs, built = {}, {}
    models: dict[object, nn.Module] = {}
    for name, case in cases.items():
        if case.save == "bf16":  # converted in place: a fresh build (the builders are seeded)
            model = case.build()
        else:
            model = models[case.build] = models.get(case.build) or case.build()
        path = _save_case(case, model, folder / f"{name}.pt")
        tokenizer_args = [a for f in tokenizer_files for a in ("--tokenizer", str(f))] if case.bpe else []
        jobs[name] = ["convert", str(path), "-o", str(folder / name), *tokenizer_args, *case.args]
        generator = torch.Generator().manual_seed(len(built))
        ids = torch.randint(3, case.vocab, (2, case.length), generator=generator)
        stored = model if case.save.startswith("sd") else load_module(case.version, path)
        built[name] = Built(case, path, folder / name, ids, stored, {})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", CONVERT, json.dumps(jobs)], cwd=folder, env=env, capture_output=True, text=True
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULTS ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    for name, result in json.loads(lines[-1].removeprefix("RESULTS ")).items():
        built[name].result = result
    return built


def _get(built: dict, name: str) -> Built:
    if name not in built:
        pytest.skip("v1's model.py needs the mup package (pip install mup)")
    return built[name]


# ---- the tests -------------------------------------------------------------------------------------------
@needs_reference
@pytest.mark.slow
@pytest.mark.parametrize("name", MATCHING)
def test_converted_model_computes_the_reference_forward(built, name):
    """Hidden states after every block, the final embedding and the logits, against the reference's forward on
    the values the file stores (bf16 files upcast to float32), with the head count read from the weights (v1
    configs say 12 heads whatever the model has). v2: equal, bit for bit (the same operations on the same
    values, the rotary table included). v1: relative error ≤ 1e-5 (7e-7 measured), because v1's GELU is
    x·(1 + erf(x/1.41421))/2 where obte's uses √2, and its MuReadout divides the input by width/24 where obte
    multiplies the logits by 24/width."""
    b = _get(built, name)
    assert b.result["exit_code"] == 0, b.result
    assert load_model(b.out).model.config.n_heads == b.case.heads
    want, got = reference_outputs(b.reference, b.ids), obte_outputs(b.out, b.ids)
    assert set(got) == set(want)
    errors = {key: relative_error(got[key], want[key]) for key in want}
    if b.case.version == "v2":
        assert all(torch.equal(got[key], want[key]) for key in want), errors
    assert max(errors.values()) <= TOLERANCE, errors


@needs_reference
@pytest.mark.slow
@pytest.mark.parametrize("name", BF16)
def test_bf16_rope_table_is_the_one_the_file_stores(built, name):
    """``model.to(torch.bfloat16)`` keeps the real part of the reference's float32 table, cos(m·θ) with
    θ = 1/10000^(2j/d) evaluated in float32: the converted model's table, rounded as stored, is that buffer
    exactly (a float64 θ differs by one float32 ulp for some j, which moves cos at long positions)."""
    b = _get(built, name)
    assert b.result["exit_code"] == 0, b.result
    stored = b.reference.state_dict()
    stored = stored[next(k for k in stored if k.endswith("h.0.attn.freqs_cis"))]
    model = load_model(b.out).model
    cos, _ = model.rotary(torch.arange(stored.shape[0])[None])
    assert torch.equal(cos[0, 0].to(torch.bfloat16).float(), stored)


@needs_reference
@pytest.mark.slow
def test_float32_rope_table_is_the_one_the_file_stores(built):
    b = _get(built, "v2-head128-fp32")
    assert b.result["exit_code"] == 0, b.result
    stored = b.reference.transformer.h[0].attn.freqs_cis
    cos, sin = load_model(b.out).model.rotary(torch.arange(stored.shape[0])[None])
    assert torch.equal(cos[0, 0], stored.real) and torch.equal(sin[0, 0], stored.imag)


@needs_reference
@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.refused])
def test_what_the_weights_contradict_is_refused_in_one_line(built, name):
    b = _get(built, name)
    assert b.result["exit_code"] == 1, b.result
    lines = b.result["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {b.path}: "), b.result["stderr"]
    assert all(part in lines[0] for part in b.case.refused), lines[0]
    assert not b.out.exists()


def pronab_rows() -> list[dict]:
    """Four ProNAB measurements (tests/data/pronab_sample.tsv): three double-stranded, one single strand."""
    with open(DATA / "pronab_sample.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    picked = [rows[0], rows[1], rows[20], {**rows[30], "complement": ""}]
    return [{k: r[k] for k in ("protein_id", "protein", "nucleic_acid", "complement", "na_type")} for r in picked]


def pronab_ids(name: str, row: dict, tokenizer_files: list[Path]) -> list[int]:
    """evals/pronab.py's input: prot("<protein>SEQ<EOS>") + nuc("<DNA>s1<EOS><DNA>s2<EOS>"), through the
    reference's own tokenizer classes (OmniTokenizer.py): single characters, or the two BPE models with the
    protein ids offset by 2,048 and the ids 1, 2 and the ▁ piece dropped."""
    tok = reference("tokenizer")["OmniTokenizer"]
    if "char" in name:
        omni = tok.OmniTokenizer(single_char=True)
        nuc, prot = omni.nuc_sp, omni.prot_sp
    else:
        import sentencepiece as spm

        sp = [spm.SentencePieceProcessor(model_file=str(f)) for f in tokenizer_files]
        nuc = tok.TokenizerWrapper(sp[0], 0, [1, 2, sp[0].piece_to_id("▁")])
        prot = tok.TokenizerWrapper(sp[1], 2048, [1, 2, sp[1].piece_to_id("▁")])
    tag = f"<{row['na_type']}>"
    strands = [row["nucleic_acid"], row["complement"]] if row["complement"] else [row["nucleic_acid"]]
    return prot.Encode(f"<protein>{row['protein']}<EOS>") + nuc.Encode("".join(f"{tag}{s}<EOS>" for s in strands))


def reference_dg(model: nn.Module, ids: list[int]) -> float:
    with torch.no_grad():
        return float(model(torch.tensor([ids])))


@needs_reference
@pytest.mark.slow
@pytest.mark.parametrize("name", ["binder-char-fp32", "binder-bpe-bf16"])
def test_dg_model_predicts_what_omnibinder_forward_does(built, tokenizer_files, name):
    """The converted ΔG model tokenizes a complex as evals/pronab.py does and predicts OmniBindER.forward's ΔG
    (proj_head(h[:, 0]) · 1024/width · sd + mean) within 1e-5 kcal/mol."""
    b = _get(built, name)
    assert b.result["exit_code"] == 0, b.result
    ensemble = load_affinity_model(b.out)
    for row in pronab_rows():
        ids = pronab_ids(name, row, tokenizer_files)
        prepared, cut = ensemble.prepare(row["protein"], row["nucleic_acid"], row["complement"], row["na_type"])
        assert cut == 0 and list(prepared.token_ids) == ids
        dg, _ = ensemble.predict([prepared])
        assert abs(dg[0] - reference_dg(b.reference, ids)) <= TOLERANCE


@needs_reference
@pytest.mark.slow
@pytest.mark.parametrize("name", ["binder-char-fp32", "binder-bpe-bf16"])
def test_obte_affinity_prints_omnibinder_forward(built, tokenizer_files, tmp_path, name):
    """`obte affinity --complexes` on the converted model: every row's ΔG, as printed with every digit
    (--precision full), is OmniBindER.forward's on the pronab.py layout."""
    b = _get(built, name)
    rows = pronab_rows()
    with open(tmp_path / "complexes.tsv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    result = obte("affinity", "--complexes", tmp_path / "complexes.tsv", "-m", b.out, "--precision", "full")
    assert result.exit_code == 0, result.output
    printed = list(csv.DictReader(io.StringIO(result.stdout), delimiter="\t"))
    assert len(printed) == len(rows)
    for row, line in zip(rows, printed):
        expected = reference_dg(b.reference, pronab_ids(name, row, tokenizer_files))
        assert abs(float(line["dG_kcal_mol"]) - expected) <= 0.0005 + TOLERANCE, (line, expected)


# ---- the compile wrapper's pickle stays data ---------------------------------------------------------------
class _CallsAnAttribute:
    """Pickles as getattr(OrderedDict, "fromkeys")(["x"]): loading it with the real getattr would call it."""

    def __reduce__(self):
        return (OrderedDict.fromkeys, (["x"],))


def test_getattr_in_a_pickle_is_recorded_never_looked_up(tmp_path):
    """Compile wrappers name builtins.getattr; the reader accepts it only as data, so a pickle that calls what
    getattr returns is refused (with the real getattr it would load)."""
    torch.save({"weights": torch.zeros(2), "payload": _CallsAnAttribute()}, tmp_path / "getattr.pt")
    with zipfile.ZipFile(tmp_path / "getattr.pt") as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"getattr" in data and b"fromkeys" in data
    with pytest.raises(ModelFormatError, match="unreadable checkpoint"):
        read_checkpoint(tmp_path / "getattr.pt")
