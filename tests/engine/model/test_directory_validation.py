"""Broken model directories: every field of config.json is checked on load, with the field named.

Each case breaks a copy of a micro model made by `obte model init` (or one with a task head saved by the
engine) and expects one ModelFormatError line; the property tests replace fields with random JSON and
expect a load that succeeds or a ModelFormatError — never another exception.
"""

import json
import shutil

import pytest
import torch
from conftest import edit_json, obte, refused
from hypothesis import event, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.core.schema import SchemaError
from obte_cli.engine.model.directory import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model
from obte_cli.engine.model.encoder import ObteConfig, ObteModel, weight_count, weight_names, weight_shape
from obte_cli.engine.model.heads import AttentionProbe, LinearHead, build_head, check_head, head_weight_shapes

CONTACTS_HEAD = {
    "kind": "sequence",
    "n_outputs": 3,
    "base_width": 32,
    "task": "contacts",
    "method": "head",
    "cutoffs": [4.0, 6.0, 8.0],
    "thresholds": [0.1, 0.2, 0.3],
    "context": 128,
}
AFFINITY_HEAD = {"kind": "sequence", "n_outputs": 1, "task": "affinity", "dg_mean": -9.8, "dg_sd": 2.3}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "micro"
    result = obte("model", "init", "--preset", "micro", "--context", "128", "-o", path)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def with_head(micro, tmp_path_factory):
    """``micro`` with a contact head (method "head"), saved by the engine."""
    loaded = load_model(micro)
    module = build_head(CONTACTS_HEAD, loaded.model.config.width)
    path = tmp_path_factory.mktemp("models") / "contacts"
    save_model(path, loaded.model, loaded.tokenizer, head=CONTACTS_HEAD, head_state=module.state_dict())
    return path


def copy(source, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(source, target)
    return target


def edit_weights(path, change):
    tensors = load_file(str(path / WEIGHTS_FILE))
    change(tensors)
    save_file(tensors, str(path / WEIGHTS_FILE))


# ---- architecture -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("n_heads", 0, r"architecture\.n_heads must be a positive integer \(got 0\)"),
        ("width", -8, r"architecture\.width must be a positive integer \(got -8\)"),
        ("width", "abc", r"architecture\.width must be a positive integer \(got 'abc'\)"),
        ("width", 60, r"architecture\.n_heads must leave an even head size"),
        ("width", 66, r"architecture\.n_heads must divide width \(width 66 is not divisible by 4\)"),
        ("n_layers", True, r"architecture\.n_layers must be a positive integer \(got True\)"),
        ("n_heads", 4.0, r"architecture\.n_heads must be a positive integer \(got 4\.0\)"),
        ("mlp_ratio", 0, r"architecture\.mlp_ratio must be a positive integer"),
        ("max_positions", 0, r"architecture\.max_positions must be a positive integer"),
        ("vocab_size", None, r"architecture\.vocab_size must be a positive integer \(got None\)"),
        ("rope_theta", float("nan"), r"architecture\.rope_theta must be a positive finite number \(got nan\)"),
        ("attn_mult", float("inf"), r"architecture\.attn_mult must be a positive finite number"),
        ("norm_eps", -1, r"architecture\.norm_eps must be a positive finite number \(got -1\)"),
        ("readout_mult", "1", r"architecture\.readout_mult must be a positive finite number \(got '1'\)"),
        ("dropout", 2, r"architecture\.dropout must be a number in \[0, 1\) \(got 2\)"),
        ("mlp", "relu", r"architecture\.mlp must be one of gelu, swiglu \(got 'relu'\)"),
        ("norm", 3, r"architecture\.norm must be one of layernorm, omnibiote"),
        ("rope", None, r"architecture\.rope must be one of rotary"),
        ("rope_table", "llama", r"architecture\.rope_table must be one of obte, omnibiote \(got 'llama'\)"),
        ("vocab_size", 16, r"tokenizer has 49 ids but the model embeds only 16"),
        ("vocab_size", 10**12, r"embed\.weight has shape \(64, 64\), config\.json implies \(1000000000000, 64\)"),
        ("width", 2**40, r"has shape .* config\.json implies"),
        ("n_layers", 10**9, r"weights do not match config\.json \(missing blocks\.4\.ln_1\.weight"),
    ],
)
def test_bad_architecture_field_is_named(micro, tmp_path, field, value, message):
    path = copy(micro, tmp_path)
    edit_json(path / CONFIG_FILE, lambda c: c["architecture"].__setitem__(field, value))
    line = refused(load_model, path, message)
    assert line.startswith(str(path))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("width"), r"config\.json: architecture\.width is missing"),
        (lambda a: a.__setitem__("hidden", 3), r"config\.json: unknown architecture field\(s\): hidden"),
    ],
)
def test_missing_and_unknown_architecture_fields(micro, tmp_path, change, message):
    path = copy(micro, tmp_path)
    edit_json(path / CONFIG_FILE, lambda c: change(c["architecture"]))
    refused(load_model, path, message)


def test_variant_fields_may_be_absent(micro, tmp_path):
    """mlp / norm / rope / rope_table came later: a config without them (the bundled ΔG models) means the
    defaults."""
    path = copy(micro, tmp_path)
    edit_json(path / CONFIG_FILE, lambda c: [c["architecture"].pop(k) for k in ("mlp", "norm", "rope", "rope_table")])
    config = load_model(path).model.config
    assert (config.mlp, config.rope_table) == ("gelu", "obte")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.__setitem__("architecture", [1]), r"config\.json: architecture must be a JSON object"),
        (lambda c: c.pop("architecture"), r"config\.json: architecture is missing"),
        (lambda c: c.__setitem__("format_version", True), r"format_version must be a positive integer \(got True\)"),
        (lambda c: c.__setitem__("obte_version", 1), r"config\.json: obte_version must be a non-empty string"),
        (lambda c: c.__setitem__("metadata", [1]), r"config\.json: metadata must be a JSON object \(got a list\)"),
        (lambda c: c.__setitem__("head", "x"), r"config\.json: head must be a JSON object \(got a string\)"),
        (lambda c: c.__setitem__("tokenizer", 5), r"config\.json: tokenizer must be a JSON object"),
        (lambda c: c.pop("tokenizer"), r"config\.json: tokenizer is missing"),
        (lambda c: c["tokenizer"].__setitem__("kind", "sentencepiece"), r"tokenizer\.kind is 'sentencepiece' but"),
        (
            lambda c: c["tokenizer"].__setitem__("vocab_size", 7),
            r"tokenizer\.vocab_size is 7 but tokenizer\.json has 49",
        ),
        (lambda c: c["tokenizer"].__setitem__("files", []), r"tokenizer\.files must be a non-empty list"),
        (lambda c: c["tokenizer"]["files"].append("gone.model"), r"tokenizer\.files\[1\] names gone\.model, which is"),
        (lambda c: c["tokenizer"]["files"].append("../x"), r"tokenizer\.files\[1\] must be a plain file name"),
    ],
)
def test_bad_top_level_and_tokenizer_sections(micro, tmp_path, change, message):
    path = copy(micro, tmp_path)
    edit_json(path / CONFIG_FILE, change)
    refused(load_model, path, message)


# ---- weights ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool])
def test_integer_weights_are_refused(micro, tmp_path, dtype):
    path = copy(micro, tmp_path)
    edit_weights(path, lambda t: t.__setitem__("embed.weight", t["embed.weight"].to(dtype)))
    refused(
        load_model,
        path,
        rf"model\.safetensors: embed\.weight holds {str(dtype)[6:]} values; weights must be floating-point",
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_non_finite_weights_are_refused_naming_the_first_bad_tensor(micro, tmp_path, value, dtype):
    """Issue #31 §4: a NaN weight used to score `nan bits per residue` with exit 0."""

    def spoil(tensors):
        tensors.update({k: v.to(dtype) for k, v in tensors.items()})
        for name in ("blocks.2.mlp.fc.weight", "blocks.3.attn.proj.weight"):
            tensors[name][1, 2] = value

    path = copy(micro, tmp_path)
    edit_weights(path, spoil)
    line = refused(load_model, path, r"holds non-finite values \(NaN or infinity\)")
    first = "blocks.2.mlp.fc.weight"  # the file lists its tensors by name: blocks.2... before blocks.3...
    assert line == f"{path / WEIGHTS_FILE}: {first} holds non-finite values (NaN or infinity): the weights are broken"


def test_a_non_finite_head_weight_is_refused_by_its_name_in_the_file(with_head, tmp_path):
    path = copy(with_head, tmp_path)
    edit_weights(path, lambda t: t["head.proj.bias"].__setitem__(0, float("nan")))
    line = refused(load_model, path, r"holds non-finite values")
    assert line.startswith(f"{path / WEIGHTS_FILE}: head.proj.bias holds")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_weights_load_as_float32(micro, tmp_path, dtype):
    path = copy(micro, tmp_path)
    edit_weights(path, lambda t: t.update({k: v.to(dtype) for k, v in t.items()}))
    original, loaded = load_model(micro).model, load_model(path).model
    assert {p.dtype for p in loaded.state_dict().values()} == {torch.float32}
    ids = torch.tensor([[4, 30, 31, 40, 2]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).hidden, original(ids).hidden, atol=0.05, rtol=0.05)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.pop("ln_f.weight"), r"weights do not match config\.json \(missing ln_f\.weight\)"),
        (lambda t: t.__setitem__("foo", torch.zeros(1)), r"weights do not match config\.json \(unexpected foo\)"),
        (
            lambda t: t.__setitem__("blocks.9.ln_1.weight", torch.zeros(64)),
            r"unexpected blocks\.9\.ln_1\.weight",
        ),
        (lambda t: t.__setitem__("readout.weight", torch.zeros(64, 32)), r"readout\.weight has shape \(64, 32\)"),
        (lambda t: t.__setitem__("head.proj.weight", torch.zeros(1, 64)), r"has head weights \(head\.proj\.weight\)"),
    ],
)
def test_weight_names_and_shapes(micro, tmp_path, change, message):
    path = copy(micro, tmp_path)
    edit_weights(path, change)
    refused(load_model, path, message)


@pytest.mark.parametrize(
    "overrides", [{}, {"mlp": "swiglu"}, {"norm": "omnibiote"}, {"mlp": "swiglu", "norm": "omnibiote", "n_layers": 3}]
)
def test_weight_shapes_from_the_config_match_the_model(overrides):
    config = ObteConfig(**{"vocab_size": 64, "width": 32, "n_layers": 2, "n_heads": 4, **overrides})
    real = {name: tuple(t.shape) for name, t in ObteModel(config).state_dict().items()}
    assert list(weight_names(config)) == list(real)
    assert weight_count(config) == len(real)
    assert {name: weight_shape(config, name) for name in real} == real
    for name in ("blocks.3.attn.qkv.weight", "blocks.01.ln_1.weight", "blocks.x.ln_1.weight", "lm_head.weight"):
        if name not in real:
            assert weight_shape(config, name) is None


# ---- task heads ---------------------------------------------------------------------------------
def test_head_shapes_from_the_description_match_the_modules():
    probe = {"kind": "attention-probe", "in_channels": 32, "n_outputs": 3, "channels": 8}
    assert head_weight_shapes(probe, 64) == {
        k: tuple(v.shape) for k, v in AttentionProbe(32, 3, 8).state_dict().items()
    }
    linear = {"kind": "sequence", "n_outputs": 2}
    assert head_weight_shapes(linear, 64) == {k: tuple(v.shape) for k, v in LinearHead(64, 2).state_dict().items()}


def test_a_model_with_a_head_loads(with_head):
    loaded = load_model(with_head)
    assert loaded.head == CONTACTS_HEAD and set(loaded.head_state) == {"proj.weight", "proj.bias"}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda h: h.__setitem__("thresholds", [0.1]),
            r"head\.thresholds must hold one threshold per cutoff, 3 \(got 1\)",
        ),
        (lambda h: h["thresholds"].__setitem__(1, "x"), r"head\.thresholds\[1\] must be a number in \[0, 1\]"),
        (lambda h: h["thresholds"].__setitem__(2, float("nan")), r"head\.thresholds\[2\] must be a number in \[0, 1\]"),
        (lambda h: h.__setitem__("cutoffs", "4,6,8"), r"head\.cutoffs must be a non-empty list \(got a string\)"),
        (lambda h: h.__setitem__("cutoffs", [8, 6, 4]), r"head\.cutoffs must be increasing"),
        (lambda h: h["cutoffs"].__setitem__(0, -4), r"head\.cutoffs\[0\] must be a positive finite number"),
        (lambda h: h.__setitem__("n_outputs", 0), r"head\.n_outputs must be a positive integer \(got 0\)"),
        (lambda h: h.__setitem__("n_outputs", 5), r"head\.n_outputs must be 3 \(one per cutoff\) \(got 5\)"),
        (lambda h: h.__setitem__("base_width", "32"), r"head\.base_width must be a positive integer"),
        (lambda h: h.__setitem__("method", "magic"), r"head\.method must be one of head, attention"),
        (lambda h: h.__setitem__("method", "attention"), r"head\.kind must be attention-probe for contact method"),
        (lambda h: h.__setitem__("context", 4096), r"head\.context must be at most the architecture's max_positions"),
        (lambda h: h.__setitem__("context", True), r"head\.context must be a positive integer"),
        (lambda h: h.pop("kind"), r"head\.kind is missing"),
        (lambda h: h.__setitem__("kind", "mlp"), r"head\.kind must be one of sequence, attention-probe"),
        (lambda h: h.__setitem__("task", "folding"), r"head\.task must be one of affinity, contacts"),
        (lambda h: h.pop("thresholds"), r"head\.thresholds is missing"),
    ],
)
def test_bad_head_field_is_named(with_head, tmp_path, change, message):
    path = copy(with_head, tmp_path)
    edit_json(path / CONFIG_FILE, lambda c: change(c["head"]))
    refused(load_model, path, message)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: t.__setitem__("head.proj.weight", torch.zeros(3, 64, dtype=torch.int64)),
            r"head\.proj\.weight holds int64",
        ),
        (lambda t: t.__setitem__("head.proj.weight", torch.zeros(2, 64)), r"head\.proj\.weight has shape \(2, 64\)"),
        (lambda t: t.pop("head.proj.bias"), r"weights do not match config\.json's head \(missing head\.proj\.bias\)"),
        (lambda t: t.__setitem__("head.extra", torch.zeros(1)), r"\(unexpected head\.extra\)"),
        (lambda t: [t.pop(k) for k in ("head.proj.weight", "head.proj.bias")], r"describes a task head but"),
    ],
)
def test_head_weights_must_match_the_description(with_head, tmp_path, change, message):
    path = copy(with_head, tmp_path)
    edit_weights(path, change)
    refused(load_model, path, message)


@pytest.mark.parametrize(
    "head, message",
    [
        (AFFINITY_HEAD, None),
        ({**AFFINITY_HEAD, "dg_sd": 0}, r"dg_sd must be a positive finite number \(got 0\)"),
        ({**AFFINITY_HEAD, "dg_mean": float("nan")}, r"dg_mean must be a finite number \(got nan\)"),
        ({**AFFINITY_HEAD, "n_outputs": 2}, r"n_outputs must be 1 \(one ΔG\)"),
        (
            {
                "kind": "attention-probe",
                "in_channels": 32,
                "n_outputs": 3,
                "channels": 8,
                **{k: CONTACTS_HEAD[k] for k in ("task", "cutoffs", "thresholds", "context")},
                "method": "attention",
            },
            None,
        ),
        (
            {"kind": "attention-probe", "in_channels": 31, "n_outputs": 3, "channels": 8, "task": "contacts"},
            r"in_channels must be 2 · n_layers · n_heads = 32",
        ),
        (
            {
                "kind": "sequence",
                "n_outputs": 2,
                "base_width": 32,
                "task": "classify-classification",
                "per_residue": False,
                "classes": ["a", "b"],
                "target_mean": 0.0,
                "target_sd": 1.0,
            },
            None,
        ),
        (
            {
                "kind": "sequence",
                "n_outputs": 2,
                "task": "residue-classification",
                "per_residue": False,
                "classes": ["a", "b"],
                "target_mean": 0.0,
                "target_sd": 1.0,
            },
            r"per_residue must be true for task residue-classification",
        ),
        (
            {
                "kind": "sequence",
                "n_outputs": 3,
                "task": "classify-classification",
                "per_residue": False,
                "classes": ["a", "b"],
                "target_mean": 0.0,
                "target_sd": 1.0,
            },
            r"n_outputs must be 2 \(one per class\)",
        ),
        (
            {
                "kind": "sequence",
                "n_outputs": 1,
                "task": "residue-regression",
                "per_residue": True,
                "classes": None,
                "target_mean": 0.5,
                "target_sd": float("inf"),
            },
            r"target_sd must be a positive finite number",
        ),
    ],
)
def test_each_task_checks_its_own_fields(micro, tmp_path, head, message):
    loaded = load_model(micro)
    config = loaded.model.config
    if message is None:
        assert check_head(head, config) is head
        module = build_head(head, config.width)
        save_model(tmp_path / "m", loaded.model, loaded.tokenizer, head=head, head_state=module.state_dict())
        assert load_model(tmp_path / "m").head == head
    else:
        with pytest.raises(SchemaError, match=message):
            check_head(head, config)


# ---- property tests -----------------------------------------------------------------------------
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.integers(1, 256),  # and plausible values, so that some fuzzed configs load
    st.floats(1e-3, 1e3),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["gelu", "swiglu", "layernorm", "omnibiote", "rotary", "cosine", "cosine-bf16", "obte", "64"]),
    st.lists(st.integers(0, 8), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
DELETE = object()
ARCHITECTURE_FIELDS = [
    "vocab_size", "width", "n_layers", "n_heads", "mlp_ratio", "max_positions", "rope_theta", "attn_mult",
    "base_width", "readout_mult", "dropout", "norm_eps", "mlp", "norm", "rope", "rope_table",
    "unknown_field",
]  # fmt: skip


def _load_or_refuse(path) -> None:
    """The property: a load succeeds (and the model runs) or raises ModelFormatError, nothing else."""
    try:
        loaded = load_model(path)
    except ModelFormatError as exc:
        assert "\n" not in str(exc)
        event("refused")
        return
    event("loaded")
    with torch.no_grad():
        assert loaded.model(torch.tensor([[4, 30, 31, 2]])).hidden.shape == (1, 4, loaded.model.config.width)


@settings(max_examples=150, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(ARCHITECTURE_FIELDS), st.one_of(json_values, st.just(DELETE))), min_size=1, max_size=3
    )
)
def test_fuzzed_architecture_loads_or_is_refused(micro, tmp_path_factory, changes):
    path = tmp_path_factory.mktemp("fuzz", numbered=True)
    original = json.loads((micro / CONFIG_FILE).read_text())
    for name in (WEIGHTS_FILE, "tokenizer.json"):
        (path / name).symlink_to(micro / name)
    for field, value in changes:
        if value is DELETE:
            original["architecture"].pop(field, None)
        else:
            original["architecture"][field] = value
    (path / CONFIG_FILE).write_text(json.dumps(original))
    _load_or_refuse(path)


@settings(max_examples=100, deadline=None)
@given(
    section=st.sampled_from(["head", "tokenizer", "top"]),
    field=st.sampled_from(
        [
            "kind",
            "n_outputs",
            "base_width",
            "task",
            "method",
            "cutoffs",
            "thresholds",
            "context",
            "vocab_size",
            "files",
            "format_version",
            "metadata",
            "head",
            "architecture",
        ]
    ),
    value=st.one_of(json_values, st.just(DELETE)),
)
def test_fuzzed_head_and_tokenizer_sections_load_or_are_refused(with_head, tmp_path_factory, section, field, value):
    path = tmp_path_factory.mktemp("fuzz", numbered=True)
    config = json.loads((with_head / CONFIG_FILE).read_text())
    for name in (WEIGHTS_FILE, "tokenizer.json"):
        (path / name).symlink_to(with_head / name)
    target = config if section == "top" else config[section]
    if value is DELETE:
        target.pop(field, None)
    else:
        target[field] = value
    (path / CONFIG_FILE).write_text(json.dumps(config))
    _load_or_refuse(path)
