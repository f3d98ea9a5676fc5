"""The gene↔protein joint-representation probe (paper §4.5.2).

Question: does one model place a gene and the protein it encodes near each other, once a small linear
map is learned? Protocol:

1. pairs (gene DNA, its protein): from GenBank CDS features with a ``/translation`` — the gene is the
   CDS's whole span on its strand, introns included when the CDS is joined — or from a TSV;
2. both sides are embedded (mean over residues of the final layer) by the model — or, for the
   single-omic control, genes by one model and proteins by another;
3. a rank-``k`` linear map (one map shared by both sides for one model; one map per side for two
   models) is trained on ``train_frac`` of the pairs with the symmetric CLIP loss (temperature τ =
   0.07; AdamW, lr 0.01 decaying linearly to 0, full batch, ``steps`` steps, gradients clipped at
   ``grad_clip`` = 1.0 like the fine-tuning trainer's);
4. on the held-out pairs: cosine similarity of matched vs unmatched pairs after the map, and top-1 /
   top-10 retrieval accuracy of the protein from its gene among all held-out proteins.

A random-initialised model of the same shape is the control that the numbers are not trivially high.
:func:`run_joint_probe` runs the whole protocol, model and control, as `obte embed probe-joint` does.

The map is trained by a loop of its own (:func:`clip_probe`), not by the fine-tuning trainer
(:func:`obte_cli.engine.finetuning.trainer.fine_tune`): there is no backbone to tune and no per-example
target — the loss compares every gene with every protein of the full batch — and the schedule is the
paper's linear decay rather than the trainer's one-cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from obte_cli.engine.core.directories import output_directory
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import write_text_atomic
from obte_cli.engine.core.plots import similarity_boxplot
from obte_cli.engine.core.progress import Advance, ProgressFactory, no_progress
from obte_cli.engine.core.tables import read_table
from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
from obte_cli.engine.model.directory import LoadedModel, load_model
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.tokenizers.base import Segment

_PROTEIN = frozenset("ACDEFGHIKLMNPQRSTVWY")
_DNA = frozenset("ACGT")
MIN_PAIRS = 12  # the split must leave pairs to train on and at least 10 to evaluate
PROBE_COLUMNS = [
    "model",
    "train_pairs",
    "test_pairs",
    "matched_cos_mean",
    "unmatched_cos_mean",
    "top1",
    "top10",
    "chance_top1",
]


@dataclass(frozen=True)
class GenePair:
    id: str
    gene: str
    protein: str


def pairs_from_genbank(path: str | Path) -> list[GenePair]:
    """CDS features with a translation; gene = the CDS span on its strand (introns included)."""
    from Bio import SeqIO

    pairs = []
    try:
        records = list(SeqIO.parse(str(path), "genbank"))
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable GenBank file ({exc})") from None
    for record in records:
        for feature in record.features:
            if feature.type != "CDS" or "translation" not in feature.qualifiers:
                continue
            span = record.seq[int(feature.location.start) : int(feature.location.end)]
            gene = str(span.reverse_complement() if feature.location.strand == -1 else span).upper()
            protein = feature.qualifiers["translation"][0].upper()
            name = (feature.qualifiers.get("locus_tag") or feature.qualifiers.get("gene") or [f"cds{len(pairs) + 1}"])[
                0
            ]
            if set(gene) <= _DNA and set(protein) <= _PROTEIN:
                pairs.append(GenePair(f"{record.id}:{name}", gene, protein))
    return pairs


def pairs_from_tsv(path: str | Path) -> list[GenePair]:
    table = read_table(path, dtype=str)
    if not {"id", "gene_seq", "protein_seq"} <= set(table.columns):
        raise InputError(f"{path}: needs columns id, gene_seq, protein_seq")
    return [
        GenePair(r.id, r.gene_seq.upper().replace("U", "T"), r.protein_seq.upper())
        for r in table.itertuples()
        if set(r.gene_seq.upper().replace("U", "T")) <= _DNA and set(r.protein_seq.upper()) <= _PROTEIN
    ]


def embed_side(
    model, tokenizer, sequences: list[str], molecule: str, names: list[str], window: int, advance: Advance | None = None
) -> np.ndarray:
    settings = EmbeddingSettings(pool="mean", window=window, stride=window // 2)
    segments = [Segment(s, molecule, n) for s, n in zip(sequences, names)]
    return np.stack([e.vectors[0] for e in embed_segments(model, tokenizer, segments, settings, advance=advance)])


@dataclass
class ProbeResult:
    matched: np.ndarray  # cosine similarity of held-out matched pairs
    unmatched: np.ndarray  # of held-out unmatched pairs
    top1: float
    top10: float
    train_pairs: int
    test_pairs: int


def clip_probe(
    genes: np.ndarray,
    proteins: np.ndarray,
    shared_map: bool,
    rank: int = 16,
    train_frac: float = 0.05,
    steps: int = 10_000,
    temperature: float = 0.07,
    lr: float = 0.01,
    seed: int = 0,
    grad_clip: float = 1.0,
    advance: Advance | None = None,
) -> ProbeResult:
    """Train the rank-``rank`` map(s) on a random ``train_frac`` of pairs; score the rest. ``advance(1)``
    hears each training step."""
    n = len(genes)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_train = max(2, int(round(train_frac * n)))
    if n - n_train < 10:
        raise InputError(f"{n} pairs leave fewer than 10 to evaluate; give more pairs or a smaller --train-frac")
    train, test = order[:n_train], order[n_train:]
    torch.manual_seed(seed)
    g = torch.as_tensor(genes, dtype=torch.float32)
    p = torch.as_tensor(proteins, dtype=torch.float32)
    # standardise each side with training statistics, so the map's scale does not depend on the model's
    g_mean, g_sd = g[train].mean(0), g[train].std(0) + 1e-6
    p_mean, p_sd = p[train].mean(0), p[train].std(0) + 1e-6
    g, p = (g - g_mean) / g_sd, (p - p_mean) / p_sd
    map_g = torch.nn.Linear(g.shape[1], rank, bias=False)
    map_p = map_g if shared_map and g.shape[1] == p.shape[1] else torch.nn.Linear(p.shape[1], rank, bias=False)
    maps = list({id(m): m for m in (map_g, map_p)}.values())
    weights = [w for m in maps for w in m.parameters()]
    optimizer = torch.optim.AdamW(weights, lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
    labels = torch.arange(len(train))
    for _ in range(steps):
        zg = F.normalize(map_g(g[train]), dim=1)
        zp = F.normalize(map_p(p[train]), dim=1)
        logits = zg @ zp.T / temperature
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, grad_clip)
        optimizer.step()
        scheduler.step()
        if advance is not None:
            advance(1)
    with torch.no_grad():
        zg = F.normalize(map_g(g[test]), dim=1)
        zp = F.normalize(map_p(p[test]), dim=1)
        similarity = (zg @ zp.T).numpy()
    matched = np.diag(similarity).copy()
    unmatched = similarity[~np.eye(len(test), dtype=bool)]
    rank_of_match = (similarity > matched[:, None]).sum(axis=1)  # proteins scored above the true one
    return ProbeResult(
        matched, unmatched, float((rank_of_match < 1).mean()), float((rank_of_match < 10).mean()), len(train), len(test)
    )


def _ignore(*args) -> None:
    return None


@dataclass
class JointProbe:
    """What `obte embed probe-joint` runs: one model for both sides (one shared map), or the single-omic
    control of a gene model and a protein model (one map per side); the map's training; the control."""

    model: Path | None = None
    model_gene: Path | None = None
    model_protein: Path | None = None
    rank: int = 16
    train_frac: float = 0.05
    steps: int = 10_000
    window: int = 0  # residues per embedding window (0: each model's context − 2)
    seed: int = 0  # of the split, the map and the random-init control
    control: bool = True  # also probe a random-initialised model of the same shape

    @property
    def label(self) -> str:
        return str(self.model or f"{self.model_gene} + {self.model_protein}")

    @property
    def name(self) -> str:
        """The model(s) by directory name, for the figure (the label is the path, which may be a long install
        path)."""
        if self.model is not None:
            return Path(self.model).name
        return f"{Path(self.model_gene).name} + {Path(self.model_protein).name}"


@dataclass
class JointProbeRow:
    model: str  # what read the pairs: the model(s), or "random-init control"
    result: ProbeResult

    def values(self) -> dict:
        """The row's :data:`PROBE_COLUMNS`."""
        r = self.result
        return {
            "model": self.model,
            "train_pairs": r.train_pairs,
            "test_pairs": r.test_pairs,
            "matched_cos_mean": float(r.matched.mean()),
            "unmatched_cos_mean": float(r.unmatched.mean()),
            "top1": r.top1,
            "top10": r.top10,
            "chance_top1": 1 / r.test_pairs,
        }


def probe_table(rows: list[JointProbeRow]) -> str:
    """The rows as TSV with a header (floats to 4 decimals)."""
    lines = ["\t".join(PROBE_COLUMNS)]
    for row in rows:
        values = row.values()
        lines.append(
            "\t".join(f"{values[c]:.4f}" if isinstance(values[c], float) else str(values[c]) for c in PROBE_COLUMNS)
        )
    return "\n".join(lines) + "\n"


def read_gene_pairs(path: Path) -> list[GenePair]:
    """The pairs of a TSV (``.tsv``/``.txt``) or GenBank file; refused when too few to split."""
    path = Path(path)
    pairs = pairs_from_tsv(path) if path.suffix.lower() in (".tsv", ".txt") else pairs_from_genbank(path)
    if len(pairs) < MIN_PAIRS:
        raise InputError(
            f"{path}: only {len(pairs)} gene–protein pairs with standard letters (need at least {MIN_PAIRS})"
        )
    return pairs


def _random_like(loaded: LoadedModel, seed: int) -> LoadedModel:
    torch.manual_seed(seed)
    return LoadedModel(model=ObteModel(loaded.model.config).eval(), tokenizer=loaded.tokenizer)


def run_joint_probe(
    pairs_path: Path,
    probe: JointProbe,
    out: Path | None = None,
    loaded: Callable[[int], None] = _ignore,
    scored: Callable[[JointProbeRow], None] = _ignore,
    progress: ProgressFactory = no_progress,
) -> list[JointProbeRow]:
    """The probe (see module docstring) of ``probe``'s model(s), then of the random-init control; with
    ``out``, writes probe.tsv and probe.png (box plot) there. ``loaded(n)`` hears the number of pairs,
    ``scored(row)`` each row as it is done; ``progress`` the genes and proteins embedded and the map's
    training steps, labelled ``model, ...`` or ``control, ...``."""
    shared = probe.model is not None and probe.model_gene is None and probe.model_protein is None
    two_models = probe.model is None and probe.model_gene is not None and probe.model_protein is not None
    if not (shared or two_models):
        raise InputError("give --model, or both --model-gene and --model-protein")
    if out is not None:
        output_directory(out)  # now, not after the training
    pairs = read_gene_pairs(pairs_path)
    loaded(len(pairs))
    names = [p.id for p in pairs]

    def run(label: str, gm: LoadedModel, pm: LoadedModel) -> JointProbeRow:
        gene_window = probe.window or gm.model.config.max_positions - 2
        protein_window = probe.window or pm.model.config.max_positions - 2
        which = "model" if label == probe.label else "control"
        with progress(len(pairs), f"{which}, genes embedded") as advance:
            genes = embed_side(gm.model, gm.tokenizer, [p.gene for p in pairs], "DNA", names, gene_window, advance)
        with progress(len(pairs), f"{which}, proteins embedded") as advance:
            proteins = embed_side(
                pm.model, pm.tokenizer, [p.protein for p in pairs], "protein", names, protein_window, advance
            )
        with progress(probe.steps, f"{which}, map training steps") as advance:
            result = clip_probe(
                genes,
                proteins,
                shared_map=shared,
                rank=probe.rank,
                train_frac=probe.train_frac,
                steps=probe.steps,
                seed=probe.seed,
                advance=advance,
            )
        row = JointProbeRow(label, result)
        scored(row)
        return row

    if shared:
        gene_model, protein_model = load_model(probe.model), load_model(probe.model)
    else:
        gene_model, protein_model = load_model(probe.model_gene), load_model(probe.model_protein)
    rows = [run(probe.label, gene_model, protein_model)]
    if probe.control:
        if shared:  # one random model reads both sides, as the model under test does
            control = _random_like(gene_model, probe.seed)
            rows.append(run("random-init control", control, control))
        else:
            rows.append(
                run(
                    "random-init control",
                    _random_like(gene_model, probe.seed),
                    _random_like(protein_model, probe.seed),
                )
            )
    if out is not None:
        write_text_atomic(Path(out) / "probe.tsv", probe_table(rows))
        similarity_boxplot(
            [(probe.name if r.model == probe.label else r.model, r.result.matched, r.result.unmatched) for r in rows],
            f"gene↔protein probe, rank {probe.rank}, {rows[0].result.test_pairs} held-out pairs",
            Path(out) / "probe.png",
        )
    return rows
