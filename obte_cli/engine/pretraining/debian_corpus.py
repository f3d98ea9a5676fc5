"""A real pretraining corpus from sequence sets that Debian packages ship (``scripts/build-corpus-debian.sh``).

Debian's archive carries large, real sequence collections as data or example files (UniProtKB proteins
with GO terms, COG proteins, MetaPhlAn marker genes, NCBI 16S rRNA, miRBase, whole genomes ...). This
module turns the extracted packages into per-molecule-type FASTA files that ``obte prep`` then cleans into
shards, in three steps:

1. **collect** each source into ``work/<source>.tsv.gz`` (``type<TAB>sequence``): sequences upper-cased,
   U written as T, genomes split at every non-ACGT letter and cut into fragments, records with letters
   outside the standard alphabets dropped, and duplicates dropped by accession (where the source has one)
   and by exact sequence across the whole corpus (earlier sources win). Every drop is counted per reason.
2. **allocate** residues: about as many nucleic as protein residues, and no source above ``cap`` (a
   quarter) of its modality, by water-filling (every source gets ``min(available, cap · total)``, with the
   largest total that this allows).
3. **split**: each record is kept with probability ``budget / available`` and, if kept, held out with
   probability ``holdout``; both draws come from a seeded hash of the sequence, so the corpus is the same
   on every machine and a sequence's fate does not depend on record order. Held-out records are written
   to ``fasta/heldout/`` and training never sees them.

Everything read and decided goes into ``corpus-manifest.json``: package versions and sha256, the sha256
of every input file, records and residues per source and type at each step, drop reasons and licences.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from obte_cli.engine.bio.molecules import AMINO_ACIDS, NUCLEIC, PROTEIN, molecule_type
from obte_cli.engine.bio.seqio import open_text, read_fasta

MANIFEST_FORMAT = "obte-debian-corpus"
FRAGMENT_LENGTH = 8192  # genomes are cut into pieces of at most this many nucleotides
MIN_LENGTH = 8  # shorter sequences carry no context to learn from (mature miRNAs are ~22 nt)

_NON_PROTEIN = re.compile(f"[^{AMINO_ACIDS}]")
_NON_ACGT = re.compile("[^ACGT]+")
_RNA_TO_DNA = str.maketrans("U", "T")


@dataclass(frozen=True)
class Source:
    """One sequence set inside one Debian package."""

    name: str
    package: str
    paths: tuple[str, ...]  # inside the extracted package; several files are read as one source
    molecule_type: str  # what every record of the source is
    reader: str = "fasta"  # fasta | blastdb-prot | blastdb-nucl | maf
    genome: bool = False  # split at non-ACGT letters and cut into FRAGMENT_LENGTH pieces
    accession: str = ""  # "first-word-before-bar": dedup by the accession that starts the header
    maf_species: str = ""  # for maf: keep only the rows of this species prefix (e.g. "Hsap.")
    origin: str = ""  # where the data comes from, and its terms


# Paths verified on Debian 12 (bookworm) packages. One genome per bacterial species.
SOURCES: tuple[Source, ...] = (
    Source(
        "metastudent-uniprot",
        "metastudent-data",
        tuple(f"usr/share/metastudent-data/dataset_201401/{o}/goasp.fasta" for o in ("BPO", "MFO", "CCO")),
        "protein",
        reader="blastdb-prot",
        accession="first-word-before-bar",
        origin="UniProtKB proteins with GO annotations (2014); UniProt and GO data are CC BY 4.0",
    ),
    Source(
        "cog-myva",
        "cct",
        ("usr/share/cct/lib/scripts/assign_cogs/db/myva.gz",),
        "protein",
        origin="NCBI COG database 2003 (myva); NCBI data are public domain",
    ),
    Source(
        "ensembl-tursiops",
        "plast-example",
        ("usr/share/doc/plast-example/db/tursiops.fa.gz",),
        "protein",
        origin="Ensembl Tursiops truncatus peptides (turTru1); Ensembl data have no use restrictions",
    ),
    Source(
        "macsyfinder-gembase",
        "macsyfinder",
        ("usr/share/doc/macsyfinder/examples/gembase.fasta",),
        "protein",
        origin="bacterial proteomes in Gembase format, MacSyFinder examples (GPL-3 as packaged)",
    ),
    Source(
        "mmseqs2-db",
        "mmseqs2-examples",
        ("usr/share/doc/mmseqs2/example-data/DB.fasta.gz",),
        "protein",
        origin="UniProt-derived example database of MMseqs2 (UniProt data are CC BY 4.0)",
    ),
    Source(
        "metaphlan2-markers",
        "metaphlan2-data",
        ("var/lib/metaphlan2-data/markers.fasta",),
        "DNA",
        origin="MetaPhlAn2 marker genes, coding sequences cut from NCBI RefSeq genomes (public domain)",
    ),
    Source(
        "ncbi-16s-rrna",
        "ncbi-rrna-data",
        ("usr/share/ncbi/data/Combined16SrRNA",),
        "rRNA",
        reader="blastdb-nucl",
        origin="NCBI 16S rRNA genes (public domain); the package's SILVA 93 databases are not used",
    ),
    Source(
        "dm3-upstream2000",
        "r-bioc-biostrings",
        ("usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz",),
        "DNA",
        origin="UCSC dm3 Drosophila melanogaster promoter regions, Bioconductor Biostrings (Artistic-2.0)",
    ),
    Source(
        "dictyostelium-genome",
        "spaln-data",
        ("usr/share/spaln/seqdb/dictdisc_g.gf.gz",),
        "DNA",
        genome=True,
        origin="Dictyostelium discoideum AX4 genome, NCBI RefSeq (public domain)",
    ),
    Source(
        "dictyostelium-cdna",
        "spaln-data",
        ("usr/share/spaln/seqdb/dictdisc.cf.gz",),
        "mRNA",
        origin="Dictyostelium discoideum UniGene cDNA, NCBI (public domain)",
    ),
    Source(
        "ustilago-genome",
        "maffilter-examples",
        ("usr/share/doc/maffilter/examples/Umaydis/Umaydis.fasta.gz",),
        "DNA",
        genome=True,
        origin="Ustilago maydis genome, MafFilter examples (CeCILL as packaged)",
    ),
    Source(
        "human-chr22",
        "maffilter-examples",
        (
            "usr/share/doc/maffilter/examples/Gorilla/"
            "Compara.epo_5_catarrhini_hsap-projected.chr22.subset.nogap.cleaned_aln.maf.gz",
        ),
        "DNA",
        reader="maf",
        genome=True,
        maf_species="Hsap.",
        origin="human chr22 rows of an Ensembl Compara EPO alignment (Ensembl: no use restrictions)",
    ),
    Source(
        "mirbase-hairpin",
        "seqkit-examples",
        ("usr/share/doc/seqkit-examples/tests/hairpin.fa.gz",),
        "pre-miRNA",
        origin="miRBase stem-loop precursors (miRBase data are public domain)",
    ),
    Source(
        "mirbase-mature",
        "seqkit-examples",
        ("usr/share/doc/seqkit-examples/tests/mature.fa.gz",),
        "miRNA",
        origin="miRBase mature microRNAs (public domain)",
    ),
    *(
        Source(
            f"genome-{species}",
            package,
            (path,),
            "DNA",
            genome=True,
            origin=f"{species.replace('-', ' ')} complete genome, NCBI (public domain)",
        )
        for species, package, path in (
            (
                "staphylococcus-aureus",
                "ragout-examples",
                "usr/share/doc/ragout/examples/S.Aureus/references/RF122.fasta.gz",
            ),
            ("vibrio-cholerae", "ragout-examples", "usr/share/doc/ragout/examples/V.Cholerae/references/O395.fasta.gz"),
            (
                "escherichia-coli",
                "ragout-examples",
                "usr/share/doc/ragout/examples/E.Coli/references/MG1655-K12.fasta.gz",
            ),
            (
                "helicobacter-pylori",
                "ragout-examples",
                "usr/share/doc/ragout/examples/H.Pylori/references/G27.fasta.gz",
            ),
            (
                "klebsiella-pneumoniae",
                "kleborate-examples",
                "usr/share/doc/kleborate/examples/data/Klebs_HS11286.fna.xz",
            ),
        )
    ),
)

# Extra packages the build needs but whose files are not sequences: blastdbcmd and its libraries.
TOOL_PACKAGES = ("ncbi-blast+", "liblmdb0", "libmbedtls14", "libmbedcrypto7", "libmbedx509-1")


def packages() -> list[str]:
    """Every Debian package the corpus is built from, sources first."""
    return list(dict.fromkeys([s.package for s in SOURCES] + list(TOOL_PACKAGES)))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blast:
    """How to run blastdbcmd from extracted packages (no installation needed)."""

    binary: Path
    library_path: str

    @classmethod
    def from_packages(cls, pkgs: Path) -> Blast:
        libs = [pkgs / "ncbi-blast+" / "usr/lib/ncbi-blast+"]
        libs += sorted(p for p in pkgs.glob("*/usr/lib/x86_64-linux-gnu") if p.is_dir())
        return cls(pkgs / "ncbi-blast+" / "usr/bin/blastdbcmd", ":".join(str(p) for p in libs))

    def dump(self, database: Path, dbtype: str) -> Iterator[tuple[str, str]]:
        """(header, sequence) of every entry of a BLAST database, streamed from blastdbcmd's FASTA."""
        command = [
            str(self.binary),
            "-db",
            str(database),
            "-dbtype",
            dbtype,
            "-entry",
            "all",
            "-line_length",
            "1000000000",
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            env={"LD_LIBRARY_PATH": self.library_path},
            text=True,
        )
        assert process.stdout is not None
        yield from parse_fasta_lines(process.stdout)
        if process.wait() != 0:
            raise RuntimeError(f"blastdbcmd failed on {database} (exit {process.returncode})")


def parse_fasta_lines(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(header, sequence) pairs from FASTA text lines; records without sequence are yielded empty."""
    header, chunks = None, []
    for line in lines:
        if line.startswith(">"):
            if header is not None:
                yield header, "".join(chunks)
            header, chunks = line[1:].strip(), []
        else:
            chunks.append(line.strip())
    if header is not None:
        yield header, "".join(chunks)


def parse_maf(lines: Iterable[str], species_prefix: str) -> Iterator[tuple[str, str]]:
    """(source name, ungapped sequence) of every ``s`` row whose source starts with ``species_prefix``."""
    for line in lines:
        if line.startswith("s ") and line[2:].lstrip().startswith(species_prefix):
            fields = line.split()
            yield f"{fields[1]}:{fields[2]}", fields[6].replace("-", "")


def raw_records(source: Source, pkgs: Path, blast: Blast | None) -> Iterator[tuple[str, str]]:
    """(header, sequence as written) for every record of ``source``, file after file."""
    for relative in source.paths:
        path = pkgs / source.package / relative
        if source.reader.startswith("blastdb-"):
            if blast is None:
                raise RuntimeError(f"{source.name}: reading a BLAST database needs blastdbcmd")
            yield from blast.dump(path, "prot" if source.reader == "blastdb-prot" else "nucl")
        elif source.reader == "maf":
            with open_text(path) as handle:
                yield from parse_maf(handle, source.maf_species)
        else:
            for record in read_fasta(path):
                yield record.description, record.sequence


def input_files(source: Source, pkgs: Path) -> list[Path]:
    """The files a source reads (a BLAST database is its .pin/.psq/.phr or .nin/.nsq/.nhr volumes)."""
    files = []
    for relative in source.paths:
        path = pkgs / source.package / relative
        if source.reader.startswith("blastdb-"):
            files += sorted(path.parent.glob(path.name + ".[pn]*"))
        else:
            files.append(path)
    return files


# ---------------------------------------------------------------------------------------------
# Cleaning and deduplication
# ---------------------------------------------------------------------------------------------
def accession_of(header: str, rule: str) -> str | None:
    """The record's accession for deduplication, or None if the source has none."""
    if rule == "first-word-before-bar":
        word = header.split(maxsplit=1)[0] if header.strip() else ""
        return word.split("|", 1)[0] or None
    return None


def fragments(sequence: str, length: int = FRAGMENT_LENGTH) -> Iterator[str]:
    """Genome → its maximal ACGT runs, each cut into consecutive pieces of at most ``length``."""
    for run in _NON_ACGT.split(sequence):
        for start in range(0, len(run), length):
            yield run[start : start + length]


def clean_sequences(source: Source, sequence: str) -> tuple[list[str], str | None]:
    """The canonical sequences one record contributes, or ([], drop reason)."""
    sequence = sequence.upper()
    if molecule_type(source.molecule_type).modality == PROTEIN:
        sequence = sequence.rstrip("*")  # a stop codon written at the end is no residue
        if _NON_PROTEIN.search(sequence):
            return [], "nonstandard_protein"
        pieces = [sequence]
    else:
        sequence = sequence.translate(_RNA_TO_DNA)
        if source.genome:
            pieces = list(fragments(sequence))
        elif _NON_ACGT.search(sequence):
            return [], "nonstandard_nucleic_acid"
        else:
            pieces = [sequence]
    pieces = [p for p in pieces if len(p) >= MIN_LENGTH]
    if not pieces:
        return [], "too_short" if sequence else "empty"
    return pieces, None


def sequence_digest(sequence: str) -> bytes:
    return hashlib.blake2b(sequence.encode(), digest_size=16).digest()


@dataclass
class SourceCounts:
    records_read: int = 0
    sequences_kept: int = 0  # a genome record gives many fragments
    residues_kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason → records or fragments


def collect_source(
    source: Source,
    records: Iterable[tuple[str, str]],
    seen: set[bytes],
    out: Path,
) -> SourceCounts:
    """Clean and deduplicate one source's records into ``out`` (gzip ``type<TAB>sequence`` lines).

    ``seen`` holds the digests of every sequence kept so far by any source (cross-source dedup)."""
    counts = SourceCounts()
    accessions: set[str] = set()
    type_name = molecule_type(source.molecule_type).name
    with gzip.open(out, "wt", compresslevel=1) as handle:
        for header, raw in records:
            counts.records_read += 1
            accession = accession_of(header, source.accession)
            if accession is not None:
                if accession in accessions:
                    counts.dropped["duplicate_accession"] += 1
                    continue
                accessions.add(accession)
            pieces, reason = clean_sequences(source, raw)
            if reason:
                counts.dropped[reason] += 1
            for piece in pieces:
                digest = sequence_digest(piece)
                if digest in seen:
                    counts.dropped["duplicate_sequence"] += 1
                    continue
                seen.add(digest)
                counts.sequences_kept += 1
                counts.residues_kept += len(piece)
                handle.write(f"{type_name}\t{piece}\n")
    return counts


# ---------------------------------------------------------------------------------------------
# Allocation and the seeded split
# ---------------------------------------------------------------------------------------------
def water_fill(available: dict[str, int], cap: float, limit: int | None = None) -> dict[str, int]:
    """Residues per source: every source takes ``min(available, L)`` for the largest common level L
    such that no source is more than ``cap`` of the total and the total is at most ``limit``.

    Small sources are kept whole and the large ones are cut to the level, so the mix stays diverse.
    (With fewer than 1/cap sources the cap cannot hold; every source is then cut to the same level.)"""
    if not available:
        return {}

    def total_at(level: float) -> float:
        return sum(min(a, level) for a in available.values())

    def feasible(level: float) -> bool:
        # cap·total(L) − L is concave in L and ≥ 0 near 0 when the cap can hold, so the feasible
        # levels form an interval starting at 0: bisect for its end.
        within_cap = len(available) * cap < 1 or level <= cap * total_at(level)
        return within_cap and (limit is None or total_at(level) <= limit)

    low, high = 0.0, float(max(available.values()))
    if feasible(high):
        low = high
    else:
        for _ in range(200):
            mid = (low + high) / 2
            low, high = (mid, high) if feasible(mid) else (low, mid)
    return {name: int(min(a, low)) for name, a in available.items()}


def hash_uniform(sequence: str, salt: str) -> float:
    """A number in [0, 1) that depends only on the sequence and the salt."""
    digest = hashlib.blake2b(sequence.encode(), digest_size=8, person=salt.encode()[:16]).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(sequence: str, keep_rate: float, holdout: float, seed: int) -> str | None:
    """``train``, ``heldout`` or None (not sampled), from seeded hashes of the sequence."""
    if keep_rate < 1.0 and hash_uniform(sequence, f"keep{seed}") >= keep_rate:
        return None
    return "heldout" if hash_uniform(sequence, f"holdout{seed}") < holdout else "train"


def write_split(
    collected: Path,
    name: str,
    keep_rate: float,
    holdout: float,
    seed: int,
    fasta_dir: Path,
) -> dict[str, dict[str, dict[str, int]]]:
    """Sample one collected source into ``fasta_dir/{train,heldout}/<type>/<name>.fa.gz``.

    Returns split → type → {records, residues}."""
    handles: dict[tuple[str, str], object] = {}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    try:
        with gzip.open(collected, "rt") as lines:
            for number, line in enumerate(lines, 1):
                type_name, sequence = line.rstrip("\n").split("\t")
                split = split_of(sequence, keep_rate, holdout, seed)
                if split is None:
                    continue
                key = (split, type_name)
                if key not in handles:
                    path = fasta_dir / split / type_name / f"{name}.fa.gz"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    handles[key] = gzip.open(path, "wt", compresslevel=1)
                handles[key].write(f">{name}.{number}\n{sequence}\n")
                row = counts.setdefault(split, {}).setdefault(type_name, {"records": 0, "residues": 0})
                row["records"] += 1
                row["residues"] += len(sequence)
    finally:
        for handle in handles.values():
            handle.close()
    return counts


def modality_of(source: Source) -> str:
    return molecule_type(source.molecule_type).modality


def allocate(
    available: dict[str, int],
    sources: Iterable[Source],
    cap: float,
    nucleic_per_protein: float,
    protein_limit: int | None = None,
) -> dict[str, int]:
    """Residue budgets per source: proteins water-filled under the cap, nucleic acids water-filled
    under the cap and limited to ``nucleic_per_protein`` × the protein total."""
    by_modality: dict[str, dict[str, int]] = {PROTEIN: {}, NUCLEIC: {}}
    for source in sources:
        if source.name in available:
            by_modality[modality_of(source)][source.name] = available[source.name]
    protein = water_fill(by_modality[PROTEIN], cap, protein_limit)
    protein_total = sum(protein.values())
    nucleic_limit = int(protein_total * nucleic_per_protein) if protein_total else None
    nucleic = water_fill(by_modality[NUCLEIC], cap, nucleic_limit)
    return {**protein, **nucleic}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def debian_licences(pkgs: Path, package: str) -> list[str]:
    """The ``License:`` values of a package's Debian copyright file (machine-readable format)."""
    path = pkgs / package / "usr/share/doc" / package / "copyright"
    if not path.exists():
        return []
    return sorted(
        {m.group(1).strip() for m in re.finditer(r"^License:\s*(\S.*)$", path.read_text(errors="replace"), re.M)}
    )
