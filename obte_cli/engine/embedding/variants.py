"""Zero-shot variant-effect scores from a masked-LM (the engine of `obte score --mutations/--variants`).

Variants are written as in ESM and ProteinGym: ``A42G`` is the wild-type letter, the 1-based position and
the mutant letter; ``:`` joins the substitutions of one multi-mutant (``K45R:L50P``) and, on the command
line, ``,`` separates variants. The wild-type letter is checked against the reference sequence.

Strategies (every score is a sum over the variant's substitutions, natural log, higher = fitter as the
model sees it; ``mt``/``wt`` are the mutant and wild-type letters at site ``i``):

* ``wt-marginals`` — ``log p(mt_i | wt) − log p(wt_i | wt)`` from **one unmasked pass of the wild type**
  (shared by every variant).
* ``masked-marginals`` — the same difference with site ``i`` masked in the wild type: **one pass per
  mutated position**, shared by every variant that mutates that position (ESM-1v's recommended score).
* ``mutant-marginals`` — ``log p(mt_i | mutant) − log p(wt_i | mutant)`` from **one unmasked pass of each
  mutant** (ESM-1v's "mutant marginal"). Masking the mutated sites of the mutant would give exactly the
  input of masking them in the wild type (the two sequences differ only there), so the mutant is read
  unmasked: its own substitutions are the context.
* ``pseudo-ppl`` — the pseudo-log-likelihood of the mutant minus that of the wild type, each computed as
  `obte score` does (:func:`obte_cli.engine.embedding.scoring.score_segments`: every residue masked once,
  in ``round(1/0.15) = 7`` seeded groups), so **about 7 passes per distinct sequence**. The groups are an
  approximation of the exact one-residue-at-a-time pseudo-likelihood (a residue is predicted with ~14% of
  the others masked too), and they are seeded by the sequence itself, so part of a small difference is
  the grouping.

Sequences longer than the context: the marginal strategies read a window of the context (less the tag and
``<EOS>``) centred on the variant's mutated positions (clipped to the sequence ends); a variant whose sites
span more than a window is an error. ``pseudo-ppl`` scores the whole sequence in consecutive windows, as
`obte score` does. Passes with the same window, sequence and masked sites are run once.

Only one-token-per-residue tokenizers are supported: with BPE a substitution changes the tokenization
around the site, which these marginal scores do not define.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.bio.molecules import MoleculeType
from obte_cli.engine.core.errors import InputError, NonFiniteResultError
from obte_cli.engine.core.progress import ProgressFactory, no_progress
from obte_cli.engine.core.tables import read_table
from obte_cli.engine.embedding.scoring import ScoreSettings, alphabet, score_segments
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.inference import DEFAULT_MAX_TOKENS, packed_forward
from obte_cli.engine.tokenizers.base import Segment, Tokenizer

STRATEGIES = ("wt-marginals", "masked-marginals", "mutant-marginals", "pseudo-ppl")
STRATEGY_COSTS = {
    "wt-marginals": "1 forward pass (the wild type, unmasked)",
    "masked-marginals": "1 pass per distinct mutated position",
    "mutant-marginals": "1 pass per variant (the mutant, unmasked)",
    "pseudo-ppl": "about 7 passes per distinct sequence (every residue masked once, as `obte score`)",
}
_SUBSTITUTION = re.compile(r"([A-Za-z])(\d+)([A-Za-z])")


@dataclass(frozen=True)
class Substitution:
    wild_type: str
    position: int  # 1-based
    mutant: str

    def __str__(self) -> str:
        return f"{self.wild_type}{self.position}{self.mutant}"


@dataclass(frozen=True)
class Variant:
    substitutions: tuple[Substitution, ...]

    def __str__(self) -> str:
        return ":".join(str(s) for s in self.substitutions)

    @property
    def sites(self) -> list[int]:
        """0-based positions of the substitutions."""
        return [s.position - 1 for s in self.substitutions]

    def apply(self, reference: str) -> str:
        letters = list(reference)
        for s in self.substitutions:
            letters[s.position - 1] = s.mutant
        return "".join(letters)


def _canonical(letter: str, modality: str) -> str:
    letter = letter.upper()
    return "T" if modality != "protein" and letter == "U" else letter


def parse_variant(text: str, reference: str, mol: MoleculeType) -> Variant:
    """One variant (``A42G`` or ``A42G:K45R``) against the canonical ``reference`` (upper case, nucleic U
    read as T); an :class:`InputError` naming the variant for a bad form, a position outside the reference,
    a wild-type letter that is not the reference's, a mutant letter outside the alphabet, or a site twice."""
    letters = alphabet(mol.modality)
    subs, seen = [], set()
    for part in text.strip().split(":"):
        match = _SUBSTITUTION.fullmatch(part.strip())
        if not match:
            raise InputError(f"variant '{text}': '{part}' is not a substitution like A42G")
        wt, mt = _canonical(match[1], mol.modality), _canonical(match[3], mol.modality)
        position = int(match[2])
        if not 1 <= position <= len(reference):
            raise InputError(f"variant '{text}': position {position} is outside the reference (1-{len(reference)})")
        if reference[position - 1] != wt:
            raise InputError(
                f"variant '{text}': the reference has {reference[position - 1]} at {position}, not {match[1]}"
            )
        if mt not in letters:
            raise InputError(f"variant '{text}': {match[3]} is not a {mol.modality} letter ({letters})")
        if position in seen:
            raise InputError(f"variant '{text}': position {position} is substituted twice")
        seen.add(position)
        subs.append(Substitution(wt, position, mt))
    return Variant(tuple(subs))


def parse_mutations(text: str, reference: str, mol: MoleculeType) -> list[Variant]:
    """``A42G,K45R:L50P``: variants separated by ``,``."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise InputError("--mutations: no variant given")
    return [parse_variant(p, reference, mol) for p in parts]


def format_mutations(variants: Sequence[Variant]) -> str:
    return ",".join(str(v) for v in variants)


def read_variants(path: str | Path, reference: str, mol: MoleculeType, column: str = "mutant"):
    """(table, variants) from a CSV (``.csv``) or TSV with a ``column`` of variants; every column is kept."""
    kind = "CSV" if str(path).lower().removesuffix(".gz").endswith(".csv") else "TSV"
    table = read_table(path, kind, dtype=str, keep_default_na=False)
    if column not in table.columns:
        raise InputError(f"{path}: no '{column}' column (columns: {', '.join(map(str, table.columns))})")
    if table.empty:
        raise InputError(f"{path}: no variants")
    variants = []
    for line, text in enumerate(table[column], start=2):
        try:
            variants.append(parse_variant(text, reference, mol))
        except InputError as exc:
            raise InputError(f"{path}, line {line}: {exc}") from None
    return table, variants


@dataclass
class VariantScores:
    scores: dict[str, np.ndarray]  # strategy → one score per variant
    passes: dict[str, int] = field(default_factory=dict)  # strategy → forward passes it added
    windowed: int = 0  # variants read in a window of a reference longer than the context


@dataclass(frozen=True)
class _Pass:
    start: int  # residue offset of the window in the full sequence
    text: str  # the window's letters
    masked: tuple[int, ...]  # window-relative sites replaced by <mask>


def _window(length: int, sites: list[int], span: int, name: str) -> int:
    """Start of the ``span``-residue window centred on ``sites`` (0 when the whole sequence fits)."""
    if length <= span:
        return 0
    low, high = min(sites), max(sites)
    if high - low + 1 > span:
        raise InputError(f"variant '{name}': its sites span {high - low + 1} residues, more than a window of {span}")
    start = (low + high + 1) // 2 - span // 2
    return max(0, min(start, length - span))


def score_variants(
    model: ObteModel,
    tokenizer: Tokenizer,
    reference: str,
    mol: MoleculeType,
    variants: Sequence[Variant],
    strategies: Sequence[str] = STRATEGIES,
    device: torch.device | str = "cpu",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    seed: int = 0,
    progress: ProgressFactory = no_progress,
) -> VariantScores:
    """Scores of ``variants`` of the canonical ``reference`` under each strategy (module docstring); the
    marginals' forward passes and the pseudo-perplexity's sequences are counted through ``progress``."""
    if getattr(tokenizer, "kind", "") != "residue":
        raise InputError(
            f"variant scoring needs a one-token-per-residue tokenizer (this model's is {tokenizer.kind}: a "
            "substitution changes the tokens around the site)"
        )
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise InputError(f"unknown strategy {unknown[0]!r} (one of {', '.join(STRATEGIES)})")
    overhead = len(tokenizer.encode_one([Segment(reference[:1], mol.name)])) - 1  # tag and <EOS>
    span = model.config.max_positions - overhead
    starts = [_window(len(reference), v.sites, span, str(v)) for v in variants]
    result = VariantScores({}, windowed=len(variants) if len(reference) > span else 0)
    marginal = [s for s in strategies if s != "pseudo-ppl"]
    plan: dict[str, list[list[tuple[_Pass, int]]]] = {}  # strategy → per variant: (pass, site read) per sub
    for strategy in marginal:
        plan[strategy] = []
        for v, start in zip(variants, starts):
            text = (v.apply(reference) if strategy == "mutant-marginals" else reference)[start : start + span]
            reads = []
            for site in v.sites:
                masked = (site - start,) if strategy == "masked-marginals" else ()
                reads.append((_Pass(start, text, masked), site - start))
            plan[strategy].append(reads)
    log_probs = _run_passes(model, tokenizer, mol, plan, device, max_tokens, result.passes, progress)
    index = {c: i for i, c in enumerate(alphabet(mol.modality))}
    for strategy in marginal:
        result.scores[strategy] = np.array(
            [
                sum(
                    log_probs[p][site][index[s.mutant]] - log_probs[p][site][index[s.wild_type]]
                    for (p, site), s in zip(reads, v.substitutions)
                )
                for reads, v in zip(plan[strategy], variants)
            ],
            dtype=np.float64,
        )
    if "pseudo-ppl" in strategies:
        result.scores["pseudo-ppl"], result.passes["pseudo-ppl"] = _pseudo_ppl(
            model, tokenizer, reference, mol, variants, device, max_tokens, seed, progress
        )
    for strategy in strategies:
        NonFiniteResultError.check(result.scores[strategy], model.source, strategy, "a variant score")
    return VariantScores({s: result.scores[s] for s in strategies}, result.passes, result.windowed)


@torch.inference_mode()
def _run_passes(
    model, tokenizer, mol, plan, device, max_tokens, passes_count, progress: ProgressFactory = no_progress
) -> dict[_Pass, dict[int, np.ndarray]]:
    """Run each distinct pass of ``plan`` once; per pass, the log-probabilities of the alphabet's letters at
    the sites read from it."""
    reads: dict[_Pass, set[int]] = {}
    for strategy, per_variant in plan.items():
        before = len(reads)
        for pairs in per_variant:
            for p, site in pairs:
                reads.setdefault(p, set()).add(site)
        passes_count[strategy] = len(reads) - before
    passes = list(reads)
    letter_ids = torch.as_tensor([tokenizer.letters[mol.modality][c] for c in alphabet(mol.modality)])
    inputs, tokens = [], []
    for p in passes:
        encoding = tokenizer.encode_one([Segment(p.text, mol.name, "reference")])
        ids = np.asarray(encoding.ids, dtype=np.int64).copy()
        residue_token = encoding.residue_to_token(0)
        ids[residue_token[list(p.masked)]] = tokenizer.mask_id
        inputs.append(ids)
        tokens.append(residue_token)
    out: dict[_Pass, dict[int, np.ndarray]] = {}
    with progress(len(inputs), "marginals, forward passes") as advance:
        for micro in packed_forward(model, inputs, tokenizer.pad_id, torch.device(device), max_tokens):
            for k, j in enumerate(micro.indices):
                sites = sorted(reads[passes[j]])
                states = micro.states(k)[torch.as_tensor(tokens[j][sites], device=micro.output.hidden.device)]
                logits = model.logits(states).float()[:, : tokenizer.vocab_size]
                values = torch.log_softmax(logits, dim=-1).cpu()[:, letter_ids].numpy()
                out[passes[j]] = dict(zip(sites, values))
            advance(len(micro.indices))
    return out


def _pseudo_ppl(
    model, tokenizer, reference, mol, variants, device, max_tokens, seed, progress: ProgressFactory = no_progress
) -> tuple[np.ndarray, int]:
    """PLL(mutant) − PLL(wild type) in nats, from `obte score`'s masked log-likelihood of each distinct
    sequence; also the number of masked copies (forward passes) it took."""
    sequences = list(dict.fromkeys([reference, *(v.apply(reference) for v in variants)]))
    settings = ScoreSettings(seed=seed, max_tokens=max_tokens)
    segments = [Segment(s, mol.name, f"sequence {i}") for i, s in enumerate(sequences)]
    pll = {}
    passes = 0
    with progress(len(sequences), "pseudo-perplexity, sequences") as advance:
        scores = score_segments(model, tokenizer, segments, settings, torch.device(device), advance=advance)
        for sequence, scored in zip(sequences, scores):
            pll[sequence] = -scored.nll_bits * math.log(2)
            passes += min(scored.tokens, round(1 / settings.mask_fraction)) * scored.windows
    wild = pll[reference]
    return np.array([pll[v.apply(reference)] - wild for v in variants], dtype=np.float64), passes


def variants_table(table: pd.DataFrame | None, variants: Sequence[Variant], scores: VariantScores) -> pd.DataFrame:
    """The input rows (or a ``mutant`` column) with one column per strategy."""
    out = pd.DataFrame({"mutant": [str(v) for v in variants]}) if table is None else table.copy()
    for strategy, values in scores.scores.items():
        out[strategy] = values
    return out
