"""Results that are not numbers are never written as results (issue #31 §4): a model whose weights hold NaN is
refused on load, and a model whose finite numbers overflow (weights of 3e38) makes `score`, `embed` and
`affinity` end in one `error:` line naming the model and the record, where they used to print `nan` with
exit 0. (`obte predict`: tests/commands/test_predict.py.)"""

import shutil

import numpy as np
import pytest
from conftest import DATA, obte, one_error_line
from safetensors.torch import load_file, save_file

PROTEIN = "MKVLAAGIVWHDEKRLA"


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "micro"
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", path).exit_code == 0
    return path


def spoiled(micro, tmp_path, name, value):
    """A copy of ``micro`` whose weight ``name`` is ``value`` throughout."""
    path = tmp_path / "spoiled"
    shutil.copytree(micro, path)
    tensors = load_file(str(path / "model.safetensors"))
    tensors[name][:] = value
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "obte-model"})
    return path


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "p.fa"
    path.write_text(f">first\n{PROTEIN}\n>second\n{PROTEIN[::-1]}\n")
    return path


@pytest.mark.parametrize("command", [["score"], ["embed", "-o", "e.tsv"]])
def test_nan_weights_are_refused_before_anything_is_computed(micro, tmp_path, fasta, command):
    model = spoiled(micro, tmp_path, "blocks.1.mlp.fc.weight", float("nan"))
    result = obte(*command[:1], fasta, "-m", model, *[tmp_path / c if c.endswith(".tsv") else c for c in command[1:]])
    line = one_error_line(result)
    assert line == (
        f"error: {model / 'model.safetensors'}: blocks.1.mlp.fc.weight holds non-finite values (NaN or infinity): "
        "the weights are broken"
    )
    assert not result.stdout and not (tmp_path / "e.tsv").exists()


def test_score_never_prints_nan_bits_per_residue(micro, tmp_path, fasta):
    """Logits of 3e38 × states overflow to infinity, and log-softmax makes NaN of them."""
    model = spoiled(micro, tmp_path, "readout.weight", 3e38)
    out = tmp_path / "scores.tsv"
    line = one_error_line(obte("score", fasta, "-m", model, "-o", out))
    assert line.startswith(f"error: {model}: record 'first': the masked log-likelihood is nan (not a finite number)")
    assert not out.exists()
    assert obte("score", fasta, "-m", micro, "-o", out).exit_code == 0  # the same inputs, a sane model: numbers


@pytest.mark.parametrize("pool, out", [("mean", "e.npy"), ("per-token", "e.safetensors")])
def test_embed_never_writes_a_non_finite_embedding(micro, tmp_path, fasta, pool, out):
    """Embeddings of 3e38 overflow the first layer norm's variance."""
    model = spoiled(micro, tmp_path, "embed.weight", 3e38)
    out = tmp_path / out
    line = one_error_line(obte("embed", fasta, "-m", model, "--pool", pool, "-o", out))
    assert line.startswith(f"error: {model}: record 'first': an embedding value is nan (not a finite number)")
    assert not out.exists()


def test_affinity_never_writes_a_non_finite_dg(tmp_path):
    """A composition model whose feature scale is 1e-320 loads (finite, positive) but its ridge overflows."""
    from safetensors.numpy import load_file as load_numpy
    from safetensors.numpy import save_file as save_numpy

    from obte_cli.engine.affinity.baseline import composition_features
    from obte_cli.engine.affinity.composition_model import fit_composition_model
    from obte_cli.engine.affinity.data import load_pairs_tsv

    table = load_pairs_tsv(DATA / "pronab_sample.tsv")[0]
    model = tmp_path / "dg"
    fit_composition_model(composition_features(table), table["dG"].to_numpy(), table["protein"].to_numpy()).save(model)
    (tmp_path / "p.fa").write_text(f">prot\n{table['protein'][0]}\n")
    (tmp_path / "n.fa").write_text(">na\nACGTACGTAC\n")
    inputs = [tmp_path / "p.fa", tmp_path / "n.fa", "--na-type", "DNA", "--model", model]
    assert obte("-q", "affinity", *inputs).exit_code == 0
    tensors = load_numpy(str(model / "model.safetensors"))
    tensors["feature_scale"][:] = np.float64(1e-320)
    save_numpy(tensors, str(model / "model.safetensors"))
    result = obte("-q", "affinity", *inputs)
    line = one_error_line(result)
    assert line.startswith(f"error: {model}: record 'prot + na': the predicted ΔG, its spread or its Kd is ")
    assert not result.stdout


def test_finetune_composition_with_a_huge_dg_is_one_line_not_a_scikit_learn_traceback(tmp_path):
    lines = (DATA / "pronab_sample.tsv").read_text().splitlines()
    cells = lines[4].split("\t")
    lines[4] = "\t".join([*cells[:-1], "1e308"])
    data = tmp_path / "huge.tsv"
    data.write_text("\n".join(lines) + "\n")
    result = obte(
        "finetune", "affinity", "--data", data, "--method", "composition", "--folds", "2", "-o", tmp_path / "o"
    )
    assert one_error_line(result) == (
        f"error: {data}: line 5: dG 1e+308 is beyond ±100 kcal/mol: not a binding free energy (ΔG in kcal/mol)"
    )
    assert not (tmp_path / "o").exists()
