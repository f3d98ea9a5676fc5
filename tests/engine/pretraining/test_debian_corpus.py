"""The Debian corpus builder on tiny fake packages: parsing, molecule types, dedup, caps, hold-out."""

from __future__ import annotations

import gzip
import json
import lzma
import random
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.pretraining import debian_corpus as dc

SOURCES = {s.name: s for s in dc.SOURCES}


def random_protein(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(n))


def random_dna(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(n))


def write_fake_packages(pkgs: Path, rng: random.Random) -> dict[str, list[str]]:
    """Small files at the real paths of a few FASTA/MAF sources; returns the sequences written."""
    written: dict[str, list[str]] = {}

    def put(name: str, text: str, opener=gzip.open) -> None:
        source = SOURCES[name]
        path = pkgs / source.package / source.paths[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".gz":
            with gzip.open(path, "wt") as handle:
                handle.write(text)
        elif path.suffix == ".xz":
            with lzma.open(path, "wt") as handle:
                handle.write(text)
        else:
            path.write_text(text)

    cog = [random_protein(rng, 50 + i) for i in range(40)]
    put("cog-myva", "".join(f">COG{i}\n{s[:30]}\n{s[30:].lower()}*\n" for i, s in enumerate(cog)) + ">bad\nMKXL\n")
    written["cog-myva"] = cog
    # the same protein again in another source: dropped there as a cross-source duplicate
    tursiops = [random_protein(rng, 60) for _ in range(10)] + [cog[0]]
    put("ensembl-tursiops", "".join(f">ENSP{i} pep\n{s}\n" for i, s in enumerate(tursiops)))
    written["ensembl-tursiops"] = tursiops[:-1]
    hairpin = [random_dna(rng, 70).replace("T", "U") for _ in range(30)]
    put("mirbase-hairpin", "".join(f">x-mir-{i} MI{i}\n{s}\n" for i, s in enumerate(hairpin)))
    written["mirbase-hairpin"] = [s.replace("U", "T") for s in hairpin]
    genome = random_dna(rng, 20_000)
    put("genome-klebsiella-pneumoniae", f">chr1\n{genome[:9000]}NNNNN{genome[9000:]}\n")
    written["genome-klebsiella-pneumoniae"] = [genome[:9000], genome[9000:]]
    human, chimp = random_dna(rng, 300), random_dna(rng, 300)
    maf = (
        "##maf version=1\n#\na\n"
        f"s Hsap.22 100 300 + 51304566 {human[:150]}---{human[150:]}\n"
        f"s Ptro.22 100 300 + 51304566 {chimp}\n\n"
    )
    put("human-chr22", maf)
    written["human-chr22"] = [human]
    return written


def test_collect_parses_types_fragments_and_dedups(tmp_path):
    rng = random.Random(1)
    pkgs = tmp_path / "pkgs"
    written = write_fake_packages(pkgs, rng)
    seen: set[bytes] = set()
    got: dict[str, list[tuple[str, str]]] = {}
    counts = {}
    for name in written:
        out = tmp_path / f"{name}.tsv.gz"
        counts[name] = dc.collect_source(SOURCES[name], dc.raw_records(SOURCES[name], pkgs, None), seen, out)
        with gzip.open(out, "rt") as handle:
            got[name] = [tuple(line.rstrip("\n").split("\t")) for line in handle]

    # proteins: upper-cased, stop stripped, the X record dropped and counted
    assert [s for _, s in got["cog-myva"]] == written["cog-myva"]
    assert {t for t, _ in got["cog-myva"]} == {"protein"}
    assert counts["cog-myva"].dropped == {"nonstandard_protein": 1}
    # a protein already kept by an earlier source is a cross-source duplicate
    assert [s for _, s in got["ensembl-tursiops"]] == written["ensembl-tursiops"]
    assert counts["ensembl-tursiops"].dropped == {"duplicate_sequence": 1}
    # miRBase hairpins are pre-miRNA, stored with T
    assert {t for t, _ in got["mirbase-hairpin"]} == {"pre-miRNA"}
    assert [s for _, s in got["mirbase-hairpin"]] == written["mirbase-hairpin"]
    # a genome is split at the N run and cut into fragments of at most FRAGMENT_LENGTH
    pieces = [s for _, s in got["genome-klebsiella-pneumoniae"]]
    assert all(len(p) <= dc.FRAGMENT_LENGTH for p in pieces)
    assert "".join(pieces[:2]) == written["genome-klebsiella-pneumoniae"][0]
    assert "".join(pieces[2:]) == written["genome-klebsiella-pneumoniae"][1]
    # MAF: only the human rows, gaps removed
    assert [s for _, s in got["human-chr22"]] == written["human-chr22"]
    assert {t for t, _ in got["human-chr22"]} == {"DNA"}


def test_accession_dedup_keeps_the_first_record(tmp_path):
    source = SOURCES["metastudent-uniprot"]
    records = [("P1|GO:1", "MKVL" * 5), ("P1|GO:2", "MKVL" * 5), ("P2|GO:3", "MKAA" * 5), ("P3|GO:4", "MKVL" * 5)]
    counts = dc.collect_source(source, records, set(), tmp_path / "x.tsv.gz")
    assert counts.sequences_kept == 2
    assert counts.dropped == {"duplicate_accession": 1, "duplicate_sequence": 1}
    assert dc.accession_of("B0RED7|GO:0046933,GO:0046933", "first-word-before-bar") == "B0RED7"
    assert dc.accession_of("anything", "") is None


def test_parse_fasta_lines_and_maf():
    lines = [">a desc\n", "AC\n", "GT\n", ">b\n", ">c\n", "MK\n"]
    assert list(dc.parse_fasta_lines(lines)) == [("a desc", "ACGT"), ("b", ""), ("c", "MK")]
    maf = ["a score=1\n", "s Hsap.22 5 4 + 100 AC-GT\n", "s Ggor.22 5 4 + 100 ACGT\n"]
    assert list(dc.parse_maf(maf, "Hsap.")) == [("Hsap.22:5", "ACGT")]


@given(
    st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.integers(0, 10**9), min_size=1, max_size=8),
    st.sampled_from([0.25, 0.5, 1.0]),
)
@settings(max_examples=200, deadline=None)
def test_water_fill_respects_the_cap(available, cap):
    budgets = dc.water_fill(available, cap)
    total = sum(budgets.values())
    for name, budget in budgets.items():
        assert 0 <= budget <= available[name]
        if len(available) * cap >= 1 and total:
            assert budget <= cap * total + 1  # +1: integer rounding
    # the fill is maximal: a source below its availability sits at the common level
    if budgets and total:
        level = max(budgets.values())
        assert all(b == available[n] or b >= level - 1 for n, b in budgets.items())


def test_water_fill_example_and_limit():
    available = {"big": 1000, "mid": 400, "a": 100, "b": 100, "c": 100, "d": 100}
    assert dc.water_fill(available, cap=0.25) == {"big": 200, "mid": 200, "a": 100, "b": 100, "c": 100, "d": 100}
    # with a limit, small sources stay whole and the large ones come down to a common level
    assert dc.water_fill(available, cap=0.25, limit=600) == {
        "big": 100,
        "mid": 100,
        "a": 100,
        "b": 100,
        "c": 100,
        "d": 100,
    }
    assert dc.water_fill({"big": 1000, "small": 10}, cap=0.25, limit=110) == {"big": 100, "small": 10}
    assert sum(dc.water_fill({"big": 1000, "small": 1000, "c": 1000, "d": 1000}, 0.25, limit=400).values()) <= 400


def test_allocate_balances_modalities():
    available = {
        "cog-myva": 100,
        "mmseqs2-db": 100,
        "ensembl-tursiops": 100,
        "macsyfinder-gembase": 100,
        "metaphlan2-markers": 10_000,
        "dm3-upstream2000": 10_000,
        "human-chr22": 10_000,
        "ustilago-genome": 10_000,
        "dictyostelium-genome": 10_000,
    }
    budgets = dc.allocate(available, dc.SOURCES, cap=0.25, nucleic_per_protein=1.0)
    protein = sum(budgets[n] for n in ("cog-myva", "mmseqs2-db", "ensembl-tursiops", "macsyfinder-gembase"))
    nucleic = sum(v for n, v in budgets.items() if dc.modality_of(SOURCES[n]) == "nucleic")
    assert protein == 400
    assert nucleic <= 400 and nucleic >= 395
    assert max(v for n, v in budgets.items() if dc.modality_of(SOURCES[n]) == "nucleic") <= 0.25 * nucleic + 1


def test_split_is_seeded_disjoint_and_order_free(tmp_path):
    rng = random.Random(3)
    sequences = list({random_dna(rng, 40) for _ in range(4000)})
    collected = tmp_path / "src.tsv.gz"
    with gzip.open(collected, "wt") as handle:
        handle.writelines(f"DNA\t{s}\n" for s in sequences)
    counts = dc.write_split(collected, "src", keep_rate=0.5, holdout=0.05, seed=7, fasta_dir=tmp_path / "fa")

    def read(split):
        with gzip.open(tmp_path / "fa" / split / "DNA" / "src.fa.gz", "rt") as handle:
            return [line.strip() for line in handle if not line.startswith(">")]

    train, heldout = read("train"), read("heldout")
    assert not set(train) & set(heldout)
    assert counts["train"]["DNA"]["records"] == len(train)
    assert 0.45 < (len(train) + len(heldout)) / len(sequences) < 0.55
    assert 0.03 < len(heldout) / (len(train) + len(heldout)) < 0.07
    # a sequence's fate depends only on the sequence and the seed
    assert all(dc.split_of(s, 0.5, 0.05, 7) == "heldout" for s in heldout)
    assert any(dc.split_of(s, 0.5, 0.05, 8) != "heldout" for s in heldout)


def test_builder_script_end_to_end_on_fake_packages(tmp_path):
    rng = random.Random(5)
    pkgs = tmp_path / "pkgs"
    write_fake_packages(pkgs, rng)
    only = "cog-myva,ensembl-tursiops,mirbase-hairpin,genome-klebsiella-pneumoniae,human-chr22"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "debian_corpus.py"),
        "--debs",
        str(tmp_path / "debs"),
        "--pkgs",
        str(pkgs),
        "-o",
        str(tmp_path / "out"),
        "--only",
        only,
        "--holdout",
        "0.2",
        "--cap",
        "0.5",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    manifest = json.loads((tmp_path / "out" / "corpus-manifest.json").read_text())
    assert manifest["format"] == dc.MANIFEST_FORMAT
    by_name = {s["name"]: s for s in manifest["sources"]}
    assert set(by_name) == set(only.split(","))
    assert all(len(f["sha256"]) == 64 for s in manifest["sources"] for f in s["files"])
    assert by_name["cog-myva"]["collected"]["dropped"] == {"nonstandard_protein": 1}
    types = {p.name for p in (tmp_path / "out" / "fasta" / "train").iterdir()}
    assert types == {"protein", "pre-miRNA", "DNA"}
    for source in manifest["sources"]:
        written = sum(row["residues"] for split in source["written"].values() for row in split.values())
        assert written <= source["available_residues"]
    assert set(manifest["totals"]) == {"train", "heldout"}
    assert manifest["totals"]["train"]["protein"]["residues"] > 0 and manifest["totals"]["train"]["DNA"]["residues"] > 0
    # a re-run reuses the collected sources and writes the same corpus
    first = (tmp_path / "out" / "corpus-manifest.json").read_text()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert (tmp_path / "out" / "corpus-manifest.json").read_text() == first


def test_build_script_is_valid_bash_and_lists_every_package():
    script = (REPO / "scripts" / "build-corpus-debian.sh").read_text()
    subprocess.run(["bash", "-n", str(REPO / "scripts" / "build-corpus-debian.sh")], check=True)
    assert "debian_corpus.py" in script
