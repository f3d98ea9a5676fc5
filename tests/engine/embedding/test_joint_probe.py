"""The gene↔protein joint-representation probe (`obte embed probe-joint`): the CLIP map, pairs from GenBank, the
whole protocol on real chloroplast pairs, and the model arguments it refuses."""

import gzip

import numpy as np
import pytest
from conftest import DATA, obte

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.embedding.joint_probe import JointProbe, clip_probe, pairs_from_genbank, run_joint_probe


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("joint-probe") / "residue"
    result = obte("model", "init", "--preset", "micro", "-t", "residue", "--context", "256", "-o", path, "--seed", "4")
    assert result.exit_code == 0, result.output
    return {"residue": path}


def test_clip_probe_recovers_a_linear_relation_and_not_noise():
    rng = np.random.default_rng(0)
    genes = rng.normal(size=(400, 32))
    related = genes @ rng.normal(size=(32, 32)) + 0.1 * rng.normal(size=(400, 32))
    result = clip_probe(genes, related, shared_map=False, rank=16, train_frac=0.25, steps=300)
    assert result.top1 > 0.5 and result.matched.mean() > result.unmatched.mean() + 0.3
    noise = clip_probe(genes, rng.normal(size=(400, 32)), shared_map=False, rank=16, train_frac=0.25, steps=300)
    assert noise.top10 < 0.1 and abs(noise.matched.mean() - noise.unmatched.mean()) < 0.1


def test_probe_joint_on_real_genbank_pairs(models, tmp_path, monkeypatch):
    from obte_cli.engine.embedding import joint_probe

    drawn = []
    boxplot = joint_probe.similarity_boxplot
    monkeypatch.setattr(joint_probe, "similarity_boxplot", lambda g, *a: drawn.append(g) or boxplot(g, *a))
    genbank = tmp_path / "NC_000932.gb"  # the Arabidopsis chloroplast genome (Biopython test data)
    genbank.write_bytes(gzip.decompress((DATA / "genbank" / "NC_000932.gb.gz").read_bytes()))
    pairs = pairs_from_genbank(genbank)
    assert len(pairs) == 85 and all(p.protein and set(p.gene) <= set("ACGT") for p in pairs)
    # a CDS on the minus strand is read on its strand: it starts with a start codon like the rest
    assert np.mean([p.gene[:3] in ("ATG", "GTG", "TTG") for p in pairs]) > 0.8
    short = [p for p in pairs if len(p.gene) < 700][:30]
    table = tmp_path / "pairs.tsv"
    table.write_text("id\tgene_seq\tprotein_seq\n" + "".join(f"{p.id}\t{p.gene}\t{p.protein}\n" for p in short))
    result = obte(
        "embed",
        "probe-joint",
        "--pairs",
        table,
        "-m",
        models["residue"],
        "--steps",
        "50",
        "--train-frac",
        "0.2",
        "-o",
        tmp_path / "probe",
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [r[0] for r in rows[1:]] == [str(models["residue"]), "random-init control"]
    assert all(r[2] == "24" and 0 <= float(r[5]) <= float(r[6]) <= 1 for r in rows[1:])
    assert (tmp_path / "probe" / "probe.png").is_file()
    assert [name for name, _, _ in drawn[0]] == ["residue", "random-init control"]  # #33 §5: not the model's path


@pytest.mark.parametrize(
    "given",
    [
        {"model_gene": "g"},
        {"model_protein": "p"},
        {"model": "m", "model_gene": "g", "model_protein": "p"},
        {"model": "m", "model_gene": "g"},
        {},
    ],
)
def test_one_model_or_a_gene_and_a_protein_model(given, tmp_path):
    """Checked before the pairs are read or a model is loaded (none of these paths exists)."""
    with pytest.raises(InputError, match="give --model, or both --model-gene and --model-protein"):
        run_joint_probe(tmp_path / "pairs.tsv", JointProbe(**given), tmp_path / "out")
    assert not (tmp_path / "out").exists()
