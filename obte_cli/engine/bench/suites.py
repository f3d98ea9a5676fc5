"""The single-omic benchmark suites of `obte bench tasks`, read from the files as they are distributed.

Each loader turns one benchmark into :class:`BenchTask` s: train / dev / test :class:`Split` s, what is
predicted (a class or value per sequence or per residue), the molecule type and the metric the
literature reports. Everything is read from a data root laid out as the benchmarks ship::

    gue/<group>/<task>/{train,dev,test}.csv     GUE (DNABERT-2): sequence,label with a header; MCC
    flip/secondary_structure/{sequences,sampled,mask}.fasta
                                                FLIP 3-state secondary structure (NetSurfP-2.0 chains,
                                                test = NEW364); Q3 over resolved residues only
    flip/gb1/<split>.csv                        FLIP GB1 fitness: sequence,target,set,validation; Spearman ρ
    scope/astral_2.07_40.fa                     SCOPe 2.07 ASTRAL 40%: fold classification with whole
                                                superfamilies held out (TAPE-style remote homology); accuracy

Dev splits: GUE ships its own; FLIP marks it (``VALIDATION=True`` / ``validation == True``); for remote
homology it is a seeded 10% of the training domains (:func:`homology_task`).
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from obte_cli.engine.bio.seqio import read_fasta
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import decimal_number
from obte_cli.engine.finetuning.tasks import Split, read_sequence_split

SUITES = ("gue", "ss3", "gb1", "homology")
SPLITS = ("train", "dev", "test")
GB1_SPLITS = ("one_vs_rest", "two_vs_rest", "three_vs_rest", "low_vs_high", "sampled")
SS3_CLASSES = ("H", "E", "C")


@dataclass
class BenchTask:
    suite: str  # one of SUITES
    name: str  # e.g. gue/prom/prom_core_all
    task: str  # classification | regression
    per_residue: bool
    molecule: str  # DNA or protein: how every sequence of the task is encoded
    metric: str  # mcc | q3 | spearman | accuracy: the figure reported
    splits: dict[str, Split]
    source: dict[str, str] = field(default_factory=dict)  # split name → file, for error messages

    @property
    def score_key(self) -> str:
        """The key of the reported metric in the finetuning metrics (Q3 is per-residue accuracy)."""
        return "accuracy" if self.metric == "q3" else self.metric


# ------------------------------------------------------------------------------------------------ GUE
def gue_tasks(root: Path) -> list[BenchTask]:
    """Every GUE task under ``root`` (a directory holding train.csv, dev.csv and test.csv), sorted by name."""
    root = Path(root)
    folders = sorted({p.parent for p in root.rglob("train.csv")})
    if not folders:
        raise InputError(f"{root}: no GUE task (a folder with train.csv, dev.csv, test.csv)")
    tasks = []
    for folder in folders:
        files = {split: folder / f"{split}.csv" for split in SPLITS}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise InputError(f"{folder}: GUE task without {', '.join(Path(m).name for m in missing)}")
        splits = {split: read_sequence_split(path, split, "classification") for split, path in files.items()}
        name = "gue/" + folder.relative_to(root).as_posix()
        source = {split: str(path) for split, path in files.items()}
        tasks.append(BenchTask("gue", name, "classification", False, "DNA", "mcc", splits, source))
    return tasks


# ------------------------------------------------------------------------------------------------ FLIP
_HEADER_FLAG = re.compile(r"\b(SET|VALIDATION)=(\S+)")


def _fasta_by_id(path: Path) -> dict[str, tuple[str, str]]:
    """id → (description, sequence) of a FASTA file; a repeated id is an error."""
    records: dict[str, tuple[str, str]] = {}
    for record in read_fasta(path):
        if record.id in records:
            raise InputError(f"{path}: record '{record.id}' appears twice")
        records[record.id] = (record.description, record.sequence)
    return records


def _flip_split(where: str, set_name: str, validation: str) -> str:
    set_name, validation = set_name.lower(), validation.lower()
    if set_name not in ("train", "test"):
        raise InputError(f"{where}: set must be train or test (got {set_name!r})")
    if validation not in ("true", "false", ""):
        raise InputError(f"{where}: validation must be True, False or empty (got {validation!r})")
    if set_name == "test":
        return "test"
    return "dev" if validation == "true" else "train"


def ss3_task(folder: Path) -> BenchTask:
    """FLIP secondary structure: 3-state labels (H, E, C) per residue. Residues the mask marks 0
    (unresolved in the structure) have no label (``None``): they are neither trained on nor scored."""
    folder = Path(folder)
    paths = {name: folder / f"{name}.fasta" for name in ("sequences", "sampled", "mask")}
    for path in paths.values():
        if not path.is_file():
            raise InputError(f"{path}: no such file (FLIP secondary_structure needs sequences, sampled, mask)")
    sequences, labels, masks = (_fasta_by_id(paths[n]) for n in ("sequences", "sampled", "mask"))
    splits = {name: Split(name, [], [], []) for name in SPLITS}
    for chain, (description, states) in labels.items():
        where = f"{paths['sampled']}: record '{chain}'"
        flags = dict(_HEADER_FLAG.findall(description))
        if "SET" not in flags:
            raise InputError(f"{where}: header has no SET= (train or test)")
        split = _flip_split(where, flags["SET"], flags.get("VALIDATION", ""))
        if chain not in sequences or chain not in masks:
            raise InputError(f"{where}: no sequence or mask with this id")
        sequence, mask = sequences[chain][1].upper(), masks[chain][1]
        if not (len(sequence) == len(states) == len(mask)):
            raise InputError(
                f"{where}: {len(sequence)} residues, {len(states)} labels and {len(mask)} mask values differ"
            )
        if set(states) - set(SS3_CLASSES) or set(mask) - {"0", "1"}:
            raise InputError(f"{where}: labels must be H, E, C and mask values 0 or 1")
        splits[split].ids.append(chain)
        splits[split].sequences.append(sequence)
        splits[split].labels.append([s if m == "1" else None for s, m in zip(states, mask)])
    source = dict.fromkeys(SPLITS, str(paths["sampled"]))
    return BenchTask("ss3", "ss3/flip", "classification", True, "protein", "q3", _nonempty(splits, source), source)


def gb1_task(folder: Path, split_name: str = "three_vs_rest") -> BenchTask:
    """FLIP GB1 fitness (``split_name`` one of :data:`GB1_SPLITS`): one value per sequence."""
    if split_name not in GB1_SPLITS:
        raise ValueError(f"GB1 split must be one of {', '.join(GB1_SPLITS)}")
    path = Path(folder) / f"{split_name}.csv"
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    splits = {name: Split(name, [], [], []) for name in SPLITS}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, restval="")  # a short row's missing cells are empty
        if not {"sequence", "target", "set"} <= set(reader.fieldnames or []):
            raise InputError(f"{path}: header must have sequence, target and set columns")
        for line, row in enumerate(reader, start=2):
            where = f"{path}: line {line}"
            split = _flip_split(where, row["set"], row.get("validation") or "")
            try:
                target = decimal_number(row["target"])
            except ValueError:
                raise InputError(f"{where}, column target: {row['target']!r} is not a number") from None
            if target != target or target in (float("inf"), float("-inf")):
                raise InputError(f"{where}, column target: {row['target']!r} is not a finite number")
            splits[split].ids.append(f"gb1_{line}")
            splits[split].sequences.append(row["sequence"].strip().upper())
            splits[split].labels.append(target)
    source = dict.fromkeys(SPLITS, str(path))
    name = f"gb1/{split_name}"
    return BenchTask("gb1", name, "regression", False, "protein", "spearman", _nonempty(splits, source), source)


def _nonempty(splits: dict[str, Split], source: dict[str, str]) -> dict[str, Split]:
    for name, split in splits.items():
        if not split.ids:
            raise InputError(f"{source[name]}: the {name} split is empty")
    return splits


# ------------------------------------------------------------------------------------------------ SCOPe
_SCCS = re.compile(r"^([a-l])\.(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class ScopDomain:
    id: str
    fold: str  # class.fold, e.g. a.1
    superfamily: str  # class.fold.superfamily
    sequence: str


def read_scop_domains(path: Path) -> list[ScopDomain]:
    """ASTRAL domains (``>d1dlwa_ a.1.1.1 (A:) name {species}``) of the true classes a–g; the others
    (multi-domain, membrane, small, coiled coil, low resolution, peptides, designed) have no fold to learn."""
    domains = []
    for record in read_fasta(path):
        words = record.description.split()
        match = _SCCS.match(words[1]) if len(words) > 1 else None
        if match is None:
            raise InputError(f"{path}: record '{record.id}' has no SCOPe class.fold.superfamily.family after its id")
        klass, fold, superfamily, _ = match.groups()
        if klass > "g":
            continue
        domains.append(
            ScopDomain(record.id, f"{klass}.{fold}", f"{klass}.{fold}.{superfamily}", record.sequence.upper())
        )
    if not domains:
        raise InputError(f"{path}: no SCOPe domains of classes a–g")
    return domains


def homology_task(path: Path, seed: int = 0, min_train_per_fold: int = 10, dev_fraction: float = 0.1) -> BenchTask:
    """Remote homology: predict the fold of a domain whose whole superfamily was never seen in training.

    For every fold with at least two superfamilies, one superfamily (drawn with ``seed``) goes to test and
    the others to training. Folds with one superfamily could not be tested this way, so they are left
    out, as are folds with fewer than ``min_train_per_fold`` training domains. A seeded ``dev_fraction``
    of the training domains is the dev split (same superfamilies as training: it picks the epoch, it
    does not measure homology)."""
    domains = read_scop_domains(path)
    rng = random.Random(seed)
    superfamilies: dict[str, set[str]] = defaultdict(set)
    for d in domains:
        superfamilies[d.fold].add(d.superfamily)
    held_out = {}
    for fold in sorted(superfamilies):
        if len(superfamilies[fold]) >= 2:
            held_out[fold] = rng.choice(sorted(superfamilies[fold]))
    train_counts = Counter(d.fold for d in domains if d.fold in held_out and d.superfamily != held_out[d.fold])
    folds = {f for f in held_out if train_counts[f] >= min_train_per_fold}
    train, test = [], []
    for d in domains:
        if d.fold in folds:
            (test if d.superfamily == held_out[d.fold] else train).append(d)
    rng.shuffle(train)
    n_dev = max(1, int(len(train) * dev_fraction))
    parts = {"train": train[n_dev:], "dev": train[:n_dev], "test": test}
    splits = {
        name: Split(name, [d.id for d in part], [d.sequence for d in part], [d.fold for d in part])
        for name, part in parts.items()
    }
    # a dev domain whose fold lost every training domain to dev cannot be scored against training classes
    known = set(splits["train"].labels)
    for name in ("dev", "test"):
        splits[name] = splits[name].subset([i for i, label in enumerate(splits[name].labels) if label in known])
    source = dict.fromkeys(SPLITS, str(path))
    return BenchTask(
        "homology", "homology/scope40-fold", "classification", False, "protein", "accuracy", splits, source
    )


# ------------------------------------------------------------------------------------------------ all
def load_suite(suite: str, data: Path, seed: int = 0, gb1_split: str = "three_vs_rest") -> list[BenchTask]:
    """The tasks of ``suite`` (one of :data:`SUITES`) under the data root ``data`` (see module docstring)."""
    data = Path(data)
    if suite == "gue":
        return gue_tasks(data / "gue")
    if suite == "ss3":
        return [ss3_task(data / "flip" / "secondary_structure")]
    if suite == "gb1":
        return [gb1_task(data / "flip" / "gb1", gb1_split)]
    if suite == "homology":
        return [homology_task(data / "scope" / "astral_2.07_40.fa", seed)]
    raise ValueError(f"suite must be one of {', '.join(SUITES)}")


def select_tasks(
    suites: list[str], data: str | Path, seed: int, gb1_split: str, only: list[str] = ()
) -> list[BenchTask]:
    """The tasks of ``suites`` (``all``: every suite), read from ``data``; ``only`` keeps the tasks so named
    (an unknown name is an error)."""
    wanted = list(SUITES) if "all" in suites else list(dict.fromkeys(suites))
    tasks = [t for suite in wanted for t in load_suite(suite, data, seed, gb1_split)]
    if only:
        unknown = sorted(set(only) - {t.name for t in tasks})
        if unknown:
            raise InputError(f"--task {unknown[0]}: no such task in {', '.join(wanted)}")
        tasks = [t for t in tasks if t.name in only]
    return tasks
