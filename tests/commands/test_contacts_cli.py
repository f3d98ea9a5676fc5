"""Contact prediction: targets, thresholds, the attention probe, CV folds, and the
`finetune contacts` → `contacts predict` (TSV + mmCIF B-factors) → `bench contacts` path on real structures
(tests/data/structures and the bundled example 1AZP)."""

import gzip
import json
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DATA, obte

from obte_cli.engine.contacts.cv import propensity_probabilities, site_folds
from obte_cli.engine.contacts.io import sites_from_structure
from obte_cli.engine.contacts.predictor import load_contact_predictor
from obte_cli.engine.contacts.probe import (
    AttentionProbe,
    ProbeSettings,
    attention_maps,
    predict_probe,
    probe_features,
    train_probe,
)
from obte_cli.engine.contacts.sites import (
    ContactSite,
    encode_site,
    protein_token_targets,
    read_contact_labels,
)
from obte_cli.engine.core.metrics import random_guess_f1, roc_auc
from obte_cli.engine.core.resources import example_file
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.tokenizers.loading import load_tokenizer
from obte_cli.engine.tokenizers.residues import token_values_to_residues

STRUCTURES = DATA / "structures"
NMR_1LCD = STRUCTURES / "1LCD.cif.gz"  # lac repressor headpiece on DNA, every NMR model
# protein–DNA (1LCD, 1AZP, the 1W0T dimer) and protein–RNA (3PF4)
TRAINING_STRUCTURES = [NMR_1LCD, example_file("1AZP.pdb.gz"), STRUCTURES / "1W0T.pdb.gz", STRUCTURES / "3PF4.pdb.gz"]


def _site(protein="MKRLA", na=("ACGT",), labels=None, name="x:A"):
    labels = np.zeros((len(protein), 3), dtype=int) if labels is None else labels
    return ContactSite(name, protein, list(na), ["DNA"] * len(na), [str(i + 1) for i in range(len(protein))], labels)


def _micro(context=256):
    torch.manual_seed(0)
    tokenizer = load_tokenizer("residue")
    return ObteModel(
        preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=context)
    ).eval(), tokenizer


# ------------------------------------------------------------------------------------------------ unit
def test_targets_cover_protein_tokens_only_and_truncation_leaves_nan():
    tokenizer = load_tokenizer("residue")
    labels = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 1, 1]])
    site = _site("MKXLA", ("ACNT", "AGGT"), labels)  # X and N (modified) become <unk>
    encoding = encode_site(tokenizer, site, 64)
    targets = protein_token_targets(encoding, labels)
    protein_tokens = np.flatnonzero((encoding.segment == 0) & encoding.is_residue)
    assert np.array_equal(targets[protein_tokens], labels.astype(np.float32))
    assert np.isnan(np.delete(targets, protein_tokens, axis=0)).all()  # tags, <EOS>, nucleic acids
    short = encode_site(tokenizer, site, 2 + 3 + 6 + 6)  # room for 3 protein residues and both strands
    values = token_values_to_residues(short, np.arange(len(short))[:, None].repeat(3, 1).astype(float), 5)
    assert np.isnan(values[3:]).all() and not np.isnan(values[:3]).any()
    with pytest.raises(Exception, match="nucleic acids alone exceed"):
        encode_site(tokenizer, site, 12)


def test_propensity_counts_training_residues():
    train = [_site("KKAA", labels=np.array([[1] * 3, [1] * 3, [0] * 3, [0] * 3]))]
    k, a, w = propensity_probabilities(train, [_site("KAW")])[0][:, 0]
    assert k > 0.6 and a < 0.4 and w == pytest.approx(0.5)  # unseen residue: the overall rate


def test_attention_maps_reproduce_the_models_attention():
    model, tokenizer = _micro()
    encoding = encode_site(tokenizer, _site("MKRLAVW", ("ACGTAC",)), 64)
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
        sites.append(_site(protein, ("".join(rng.choice(list("ACGT"), 10)),), labels, f"toy{i}:A"))
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


def test_folds_keep_identical_chains_together():
    sites = [_site(p, name=f"s{i}:A") for i, p in enumerate(["MKA", "MKA", "WWW", "RRR", "RRR", "LLL", "AAA"])]
    folds = site_folds(sites, 3, seed=0)
    assert folds[0] == folds[1] and folds[3] == folds[4] and set(folds) == {0, 1, 2}


# ------------------------------------------------------------------------------------------------ CLI, real structures
@pytest.fixture(scope="module")
def trained(tmp_path_factory):

    root = tmp_path_factory.mktemp("contacts")
    assert obte("contacts", "labels", *TRAINING_STRUCTURES, "--per-chain", "-o", root / "labels.tsv").exit_code == 0
    assert (
        obte("model", "init", "--preset", "micro", "--context", "512", "--seed", "0", "-o", root / "backbone").exit_code
        == 0
    )
    result = obte(
        "finetune",
        "contacts",
        "--labels",
        root / "labels.tsv",
        "--model",
        root / "backbone",
        "-o",
        root / "run",
        "--folds",
        "2",
        "--epochs",
        "2",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    return root


def test_finetune_contacts_writes_out_of_fold_tables_and_a_model(trained):
    sites, cutoffs = read_contact_labels(trained / "labels.tsv")
    predictions = pd.read_csv(trained / "run" / "predictions.tsv", sep="\t")
    assert len(predictions) == sum(len(s.protein) for s in sites)
    assert predictions[[f"p_{c:g}" for c in cutoffs]].notna().all().all()
    folds = pd.read_csv(trained / "run" / "folds.tsv", sep="\t").set_index("site")["fold"]
    by_sequence = {}
    for site in sites:  # identical chains (the 1W0T dimer) share a fold
        by_sequence.setdefault(site.protein, set()).add(folds[site.name])
    assert all(len(f) == 1 for f in by_sequence.values())
    metrics = pd.read_csv(trained / "run" / "metrics.tsv", sep="\t")
    assert list(metrics["cutoff"]) == [4, 6, 8]
    for row in metrics.itertuples():  # recomputed from the predictions table
        labels = predictions[f"contact_{row.cutoff:g}"]
        assert row.positive_rate == pytest.approx(labels.mean(), rel=1e-3)  # the table keeps 4 digits
        assert row.random_f1 == pytest.approx(random_guess_f1(labels.mean()), rel=1e-3)
    assert (trained / "run" / "model" / "model.safetensors").is_file()


def test_finetune_contacts_context_lets_a_short_backbone_read_whole_chains(trained, tmp_path):
    """A backbone made for 64 tokens cuts most chains; --context 512 fine-tunes it at 512, and the saved model
    (config and head) reads 512, so every residue of the training chains gets a prediction."""
    assert obte("model", "init", "--preset", "micro", "--context", "64", "-o", tmp_path / "short").exit_code == 0
    args = ["finetune", "contacts", "--labels", trained / "labels.tsv", "--model", tmp_path / "short"]
    args += ["--folds", "2", "--epochs", "1", "--device", "cpu"]
    cut = obte(*args, "-o", tmp_path / "cut")
    whole = obte(*args, "--context", "512", "-o", tmp_path / "whole")
    assert cut.exit_code == 0 and whole.exit_code == 0, cut.output + whole.output
    config = json.loads((tmp_path / "whole" / "model" / "config.json").read_text())
    assert config["architecture"]["max_positions"] == 512 and config["head"]["context"] == 512
    predicted = {
        name: pd.read_csv(tmp_path / name / "predictions.tsv", sep="\t")["p_4"].notna().mean()
        for name in ("cut", "whole")
    }
    assert predicted["whole"] == 1.0 and predicted["cut"] < 0.75  # 64 tokens: 61% of residues


def test_predict_writes_mmcif_whose_bfactors_are_the_probabilities(trained, tmp_path):

    structure = NMR_1LCD
    result = obte(
        "contacts",
        "predict",
        "--structure",
        structure,
        "-m",
        trained / "run" / "model",
        "-o",
        tmp_path / "pred.tsv",
        "--cif-out",
        tmp_path / "1LCD.contacts.cif",
        "--bfactor-cutoff",
        "6",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "pred.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns[:3]) == ["site", "residue", "aa"] and set(table["site"]) == {"1LCD:A"}
    assert "".join(table["aa"]) == "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNR"
    assert table[["contact_4", "contact_6", "contact_8"]].isin([0, 1]).all().all()  # observed labels alongside
    written = gemmi.read_structure(str(tmp_path / "1LCD.contacts.cif"))
    expected = dict(zip(table["residue"].astype(str), 100 * table["p_6"].astype(float)))
    assert len(written) == len(gemmi.read_structure(str(structure)))  # every NMR model kept
    seen = 0
    for model in written:
        for chain in model:
            for residue in chain:
                for atom in residue:
                    if chain.name == "A" and str(residue.seqid.num) in expected:
                        assert atom.b_iso == pytest.approx(expected[str(residue.seqid.num)], abs=1e-2)
                        seen += 1
                    else:  # nucleic acids, waters, ligands
                        assert atom.b_iso == 0.0
    assert seen > 0


def test_predict_from_fasta_maps_a_longer_construct_onto_the_chain(trained, tmp_path):

    chain = "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNR"
    (tmp_path / "p.fa").write_text(f">lacI_construct\nGS{chain}VAQQ\n")
    (tmp_path / "n.fa").write_text(">op1\nAATTGTGAGCG\n>op2\nCGCTCACAATT\n")
    result = obte(
        "contacts",
        "predict",
        "-p",
        tmp_path / "p.fa",
        "-n",
        tmp_path / "n.fa",
        "-m",
        trained / "run" / "model",
        "-s",
        NMR_1LCD,
        "--cif-out",
        tmp_path / "out.cif",
        "-o",
        tmp_path / "pred.tsv",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "pred.tsv", sep="\t", keep_default_na=False)
    assert len(table) == len(chain) + 6
    mapped = table[table["chain_residue"] != "NA"]
    assert list(mapped["residue"].astype(int)) == list(range(3, 3 + len(chain)))  # GS precede residue 1
    assert list(mapped["chain_residue"].astype(int)) == list(range(1, len(chain) + 1))


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to predict"),
        (["-p", "x.fa"], "give both --protein and --na"),
        (["--cif-out", "o.cif", "-p", "a.fa", "-n", "b.fa"], "--cif-out needs --structure"),
    ],
)
def test_predict_input_errors_are_one_line(trained, args, message):
    result = obte("contacts", "predict", "-m", trained / "run" / "model", *args)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output


def test_predict_refuses_a_structure_without_nucleic_acid_and_a_non_contact_model(trained, tmp_path):

    lines = [
        line
        for line in gzip.decompress((STRUCTURES / "1LCD.pdb.gz").read_bytes()).decode().splitlines()
        if not (line.startswith(("ATOM", "HETATM", "TER")) and line[21] in "BC")
    ]
    (tmp_path / "protein.pdb").write_text("\n".join(lines))
    result = obte("contacts", "predict", "-s", tmp_path / "protein.pdb", "-m", trained / "run" / "model")
    assert result.exit_code == 1 and "no nucleic-acid chain" in result.stderr.strip().splitlines()[-1]
    wrong = obte("contacts", "predict", "-s", NMR_1LCD, "-m", trained / "backbone")
    assert wrong.exit_code == 1 and "not a contact model" in wrong.stderr


def test_attention_probe_model_round_trips(trained, tmp_path):

    result = obte(
        "finetune",
        "contacts",
        "--labels",
        trained / "labels.tsv",
        "--model",
        trained / "backbone",
        "-o",
        tmp_path / "probe",
        "--folds",
        "0",
        "--epochs",
        "1",
        "--probe",
        "attention",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    predicted = obte("contacts", "predict", "-s", NMR_1LCD, "-m", tmp_path / "probe" / "model")
    assert predicted.exit_code == 0, predicted.output
    table = pd.read_csv(pd.io.common.StringIO(predicted.stdout), sep="\t")
    assert table[["p_4", "p_6", "p_8"]].apply(lambda c: c.between(0, 1)).all().all()
    # the table is the saved probe applied to the saved backbone's attention maps, residue by residue
    loaded = load_contact_predictor(tmp_path / "probe" / "model")
    (site,) = sites_from_structure(NMR_1LCD)
    stack, tokens = probe_features(loaded.model, encode_site(loaded.tokenizer, site, loaded.context))
    with torch.no_grad():
        expected = torch.sigmoid(loaded.module(stack)).numpy()
    assert len(tokens) == len(table) == len(site.protein)  # residue tokenizer: one token per residue
    assert np.allclose(table[["p_4", "p_6", "p_8"]].to_numpy(), expected, atol=6e-5)  # the table keeps 4 digits
    assert (table[["p_4", "p_6", "p_8"]].std() > 0).all()  # it varies across residues


def test_bench_contacts_reports_every_predictor_beside_the_random_guess(trained, tmp_path):

    result = obte(
        "bench",
        "contacts",
        *TRAINING_STRUCTURES,
        "-m",
        trained / "backbone",
        "--methods",
        "head",
        "--methods",
        "propensity",
        "--folds",
        "2",
        "--epochs",
        "1",
        "-o",
        tmp_path / "bench",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(tmp_path / "bench" / "metrics.tsv", sep="\t")
    assert set(metrics["predictor"]) == {"propensity", "backbone head"}
    assert len(metrics) == 6 and metrics["f1"].between(0, 1).all()
    assert np.allclose(metrics["random_f1"], 2 * metrics["positive_rate"] / (1 + metrics["positive_rate"]), atol=1e-3)
    assert (tmp_path / "bench" / "contacts_f1.png").stat().st_size > 1000


def test_the_bundled_model_predicts_the_bundled_example_and_its_card_matches_its_metrics(tmp_path):
    from obte_cli.engine.core.resources import default_contacts_model_dir

    result = obte("contacts", "predict", "--structure", example_file("1AZP.pdb.gz"), "--cif-out", tmp_path / "1AZP.cif")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(pd.io.common.StringIO(result.stdout), sep="\t")
    assert len(table) == 66 and set(table["site"]) == {"1AZP:A"}
    assert gemmi.read_structure(str(tmp_path / "1AZP.cif"))[0]["A"][0][0].b_iso == pytest.approx(
        100 * table["p_4"][0], abs=1e-2
    )
    metrics = pd.read_csv(default_contacts_model_dir() / "metrics.tsv", sep="\t")
    card = (default_contacts_model_dir() / "README.md").read_text()
    for row in metrics.itertuples():
        assert f"| {row.cutoff:g} Å | {row.f1:.3f} ± {row.f1_sem:.3f} | {row.roc_auc:.3f} |" in card
        assert f"{row.random_f1:.3f} |" in card


def test_bpe_tokens_are_trained_on_the_fraction_of_their_residues_and_expanded_back():
    tokenizer = load_tokenizer("omnibiote-mixed")
    protein = "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNR"
    labels = (np.arange(len(protein))[:, None] % np.array([[2, 3, 5]]) == 0).astype(int)
    site = _site(protein, ("AATTGTGAGCG", "CGCTCACAATT"), labels)
    encoding = encode_site(tokenizer, site, 512)
    protein_tokens = np.flatnonzero((encoding.segment == 0) & encoding.is_residue)
    assert len(protein_tokens) < len(protein)  # BPE: some tokens cover several residues
    targets = protein_token_targets(encoding, labels)
    for t in protein_tokens:
        assert np.allclose(targets[t], labels[encoding.start[t] : encoding.end[t]].mean(axis=0))
    expanded = token_values_to_residues(encoding, targets, len(protein))
    covering = encoding.residue_to_token(0)
    assert np.allclose(expanded, targets[covering]) and len(covering) == len(protein)


def test_the_shipped_bench_agrees_with_the_model_card_and_the_models_own_cv():
    from obte_cli.engine.core.resources import default_contacts_model_dir

    root = default_contacts_model_dir()
    bench = pd.read_csv(root / "bench" / "metrics.tsv", sep="\t")
    own = pd.read_csv(root / "metrics.tsv", sep="\t")
    # the bundled model is the bench's head run of its first backbone: same sites, folds, seed, so the same numbers
    base = Path(bench["backbone"].dropna().iloc[0]).name
    base_head = bench[bench["predictor"] == f"{base} head"].reset_index(drop=True)
    assert len(base_head) == 3
    assert np.allclose(base_head["f1"], own["f1"]) and np.allclose(base_head["roc_auc"], own["roc_auc"])
    card = (root / "README.md").read_text()
    for name, rows in bench.groupby("predictor", sort=False):
        cells = " | ".join(f"{r.f1:.3f} ± {r.f1_sem:.3f}" for r in rows.sort_values("cutoff").itertuples())
        assert cells in card, name


def test_structure_inputs_expand_directories_and_refuse_empty_or_missing_ones(tmp_path):
    from obte_cli.engine.contacts.io import structure_files
    from obte_cli.engine.core.errors import InputError

    (tmp_path / "a.cif.gz").write_bytes(b"")
    (tmp_path / "b.PDB").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in structure_files([tmp_path])] == ["a.cif.gz", "b.PDB"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no structure files"):
        structure_files([tmp_path / "empty"])
    with pytest.raises(InputError, match="no such file"):
        structure_files([tmp_path / "missing"])
