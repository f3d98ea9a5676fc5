"""Every `obte` command of README.md's ```bash blocks runs as written (#33), on CPU, with stand-in inputs.

The README's input names (proteins.fa, gb1.fa, hg38.fa...) are rewritten to files that ship with the repository
(share/examples, tests/data, the bundled backbone) or, where nothing fits, to small files this test writes from
them (a gzipped copy, a BED over the chloroplast genome of tests/data/genbank, the GB1 domain). Outputs land in a
temporary directory, in README order, so later commands read what earlier ones wrote (corpus/ -> bpe/ ->
tokens/, labels.tsv). Commands that would run for minutes get a small budget appended (the last value of an
option wins) and nothing else changed; commands that cannot run here are in SKIP with the reason. A README
`obte` line that is neither run nor skipped fails the test, so a new example cannot go untested."""

from __future__ import annotations

import gzip
import re
import shlex
import shutil

import pytest
from conftest import DATA, REPO, obte

README = REPO / "README.md"
EXAMPLES = REPO / "share" / "examples"
BACKBONE = REPO / "share" / "models" / "obte1_omni_t6_6M_DEB12"
CHROM = "NC_000932.1"
GB1 = "MQYKLILNGKTLKGETTTEAVDAATAEKVFKQYANDNGVDGEWTYDDATKTFTVTE"  # protein G B1 domain: V39, D40, G41

# README input name -> the file that stands in for it (relative names are written by _write_stand_ins).
STAND_INS = {
    "proteins.fa": EXAMPLES / "proteins.fa",
    "proteins.fa.gz": "proteins.fa.gz",
    "genes.fa": EXAMPLES / "dna.fa",
    "omnibiote": BACKBONE,
    "my-model": BACKBONE,
    "backbone/": BACKBONE,
    "backbone": BACKBONE,
    "promoters.bed": "regions.bed",
    "exons.bed": "regions.bed",
    "peaks.bed": "regions.bed",
    "hg38.fa": "genome.fa",
    "genome.fa": "genome.fa",
    "genome.fa.gz": "genome.fa.gz",
    "gb1.fa": "gb1.fa",
    "P61991.fa": "gb1.fa",
    "dms.csv": "dms.csv",
    "gbvrl*.seq.gz": DATA / "genbank" / "gbvrl1_start.seq.gz",
    "uniref100.fasta.gz": DATA / "debian-heldout" / "protein" / "macsyfinder-gembase.fa.gz",
    "sac7d.fa": "sac7d.fa",
    "duplex.fa": "duplex.fa",
    "my-pdb/*.cif.gz": [DATA / "structures" / n for n in ("1LCD.cif.gz", "1W0T.pdb.gz", "3PF4.pdb.gz")]
    + [EXAMPLES / "1AZP.pdb.gz"],  # four protein-nucleic acid complexes: enough proteins for 2-fold CV
    "train.csv": DATA / "tasks" / "coding_train.csv",
    "dev.csv": DATA / "tasks" / "coding_dev.csv",
    "test.csv": DATA / "tasks" / "coding_test.csv",
    "ss_train.tsv": DATA / "tasks" / "ss3_train.tsv",
    "ss_dev.tsv": DATA / "tasks" / "ss3_dev.tsv",
    "ss_test.tsv": DATA / "tasks" / "ss3_test.tsv",
}

# Small budgets appended (the last value of an option wins) to commands that would run for minutes on a CPU.
OVERRIDES = {
    "obte pretrain --tokens tokens/ --preset tiny --total-tokens 5M -o runs/tiny": "--total-tokens 4096",
    "obte finetune contacts --labels labels.tsv --model backbone/ -o contacts-model/": "--folds 2 --epochs 1",
    "obte finetune contacts --labels labels.tsv --model backbone/ --probe attention -o probe/": "--folds 2 --epochs 1",
    "obte finetune classify --train train.csv --dev dev.csv --test test.csv --model backbone -o run/": "--epochs 1",
    "obte finetune residue --train ss_train.tsv --dev ss_dev.tsv --test ss_test.tsv --model backbone -o ss/": (
        "--epochs 1"
    ),
}

# Commands that read what a later README command writes run after it.
AFTER = {
    "obte predict run/model --regions peaks.bed --genome genome.fa -o peaks.tsv": "obte finetune classify",
}

NO_CHECKPOINT = "needs an OmniBioTE reference checkpoint and its SentencePiece models (not redistributed)"
SKIP = {
    "obte bench variants --data ../shared/data/flip/gb1/one_vs_rest.csv -o gb1-variants": (
        "needs ../shared data (FLIP), absent from a clone; minutes of fine-tuning"
    ),
    "obte bench contacts ../shared/data/pdb-protein-dna ../shared/data/pdb-protein-rna "
    "-m base/ -m dG-tuned/ -o bench-contacts/": "needs ../shared data (PDB complexes) and two tuned models; > 1 minute",
    "obte bench tasks --data ../shared/data -m share/models/obte1_omni_t6_6M_DEB12 -m my-protein-model "
    "-o bench-tasks/": "needs ../shared data (GUE, FLIP...) and a second model; > 1 minute",
    "obte convert omnibiota-multi-E-mixed-small.pt -o models/omnibiote-small -t genbank-2k.model "
    "-t uniref-2k.model": NO_CHECKPOINT,
    "obte convert omnibinder-XL.pt -o models/omnibinder-xl -t genbank-2k.model -t uniref-2k.model": NO_CHECKPOINT,
    "obte affinity proteins.fa dna.fa --model models/omnibinder-xl": "reads the OmniBinder-XL model converted above",
}


def readme_commands() -> list[str]:
    """The `obte ...` lines of README.md's ```bash blocks: continuations joined, comments stripped, lines with
    `...` placeholders and scripts/ or torchrun lines left out."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.S | re.M):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if not line.startswith("obte ") or "..." in line or "torchrun" in line or "scripts/" in line:
                continue
            commands.append(" ".join(line.split()))
    return commands


def _write_stand_ins(root) -> None:
    from Bio import SeqIO, bgzf

    from obte_cli.engine.bio.seqio import write_fasta

    with open(EXAMPLES / "proteins.fa", "rb") as src, gzip.open(root / "proteins.fa.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    with gzip.open(DATA / "genbank" / "NC_000932.gb.gz", "rt") as handle:
        record = SeqIO.read(handle, "genbank")
    with open(root / "genome.fa", "w") as handle:
        write_fasta([(CHROM, str(record.seq))], handle, 70)
    with open(root / "genome.fa", "rb") as src, bgzf.BgzfWriter(root / "genome.fa.gz", "wb") as dst:
        dst.write(src.read())
    (root / "regions.bed").write_text(f"{CHROM}\t1000\t1300\tone\t0\t+\n{CHROM}\t60000\t60200\ttwo\t0\t-\n")
    (root / "gb1.fa").write_text(f">GB1\n{GB1}\n")
    (root / "dms.csv").write_text("mutant,score\nV39A,0.1\nD40G:G41A,-0.3\nQ2T,0.5\n")
    with gzip.open(EXAMPLES / "1AZP.pdb.gz", "rt") as handle:  # Sac7d and the DNA duplex it binds in 1AZP
        sac7d = next(SeqIO.parse(handle, "pdb-seqres"))
    (root / "sac7d.fa").write_text(f">sac7d\n{sac7d.seq}\n")
    (root / "duplex.fa").write_text(">top\nGCGATCGC\n>bottom\nGCGATCGC\n")


def _argv(command: str, root) -> tuple[list[str], str | None]:
    """The arguments after `obte`, inputs replaced by their stand-ins, and the file a `> FILE` redirect names."""
    words = shlex.split(command)[1:]
    redirect = None
    if ">" in words:
        at = words.index(">")
        redirect, words = words[at + 1], words[:at]
    argv = []
    for word in words:
        if word in STAND_INS:
            stand_ins = STAND_INS[word] if isinstance(STAND_INS[word], list) else [STAND_INS[word]]
            argv += [str(root / s if isinstance(s, str) else s) for s in stand_ins]
        else:
            argv.append(str(REPO / word) if word.startswith("share/") else word)
    return argv + OVERRIDES.get(command, "").split(), redirect


def _in_order(commands: list[str]) -> list[str]:
    ordered = [c for c in commands if c not in AFTER]
    for command, after in AFTER.items():
        if command in commands:
            at = max(i for i, c in enumerate(ordered) if c.startswith(after))
            ordered.insert(at + 1, command)
    return ordered


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    commands = readme_commands()
    assert len(commands) > 20, "the README's bash blocks were not found"
    stale = [c for c in list(SKIP) + list(OVERRIDES) + list(AFTER) if c not in commands]
    assert not stale, f"entries for commands no longer in the README: {stale}"


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OBTE_PROGRESS_INTERVAL", "1000")
    _write_stand_ins(tmp_path)
    failures = []
    for command in _in_order(readme_commands()):
        if command in SKIP:
            continue
        argv, redirect = _argv(command, tmp_path)
        missing = [
            w
            for w in argv
            if not w.startswith("-") and ("*" in w or w.endswith((".fa", ".bed"))) and not (tmp_path / w).exists()
        ]
        if missing:
            failures.append(f"{command}\n  no stand-in for {missing}: add one to STAND_INS or a reason to SKIP")
            continue
        result = obte(*argv)
        if result.exit_code != 0:
            error = result.output.strip()[-600:] or repr(result.exception)
            failures.append(f"{command}\n  exit {result.exit_code}: {error}")
            continue
        if redirect:
            (tmp_path / redirect).write_text(result.stdout)
    assert not failures, "README commands that fail:\n" + "\n".join(failures)
