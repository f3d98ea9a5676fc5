"""Per-residue contact prediction: which protein residues touch the nucleic acid (paper §4.3.3).

Input of one site (a protein chain and the nucleic-acid chains it binds), the affinity layout::

    <protein> M K ... <EOS> <DNA> A C G ... <EOS> <DNA> C G T ... <EOS>

A linear head on the final hidden state of every protein token gives one logit per contact cutoff
(4, 6, 8 Å are learnt together); the loss is binary cross-entropy on protein tokens only — the
nucleic-acid tokens are context. With a BPE tokenizer a token's target is the fraction of its residues
in contact, and predictions are expanded back to one per residue (each residue gets its token's; the
one mapping of :mod:`obte_cli.engine.finetuning.residues`). Training runs on the one fine-tuning loop
(:func:`obte_cli.engine.finetuning.trainer.fine_tune`) as a ``bce`` :class:`TokenTask`.

Probabilities are turned into calls with the threshold that maximises F1 on the training sites (stored
with the head): contacts are rare at 4 Å, where 0.5 would call almost nothing.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.tables import read_table
from obte_cli.engine.finetuning.residues import (
    residue_labels_to_tokens,
    token_values_to_residues,
)
from obte_cli.engine.finetuning.trainer import FinetuneSettings, TokenTask, fine_tune
from obte_cli.engine.model.heads import CONTACTS_TASK, LinearHead, build_head
from obte_cli.engine.tokenizers.base import Encoding, Segment, Tokenizer, encode_prefix_to_fit

HEAD_KIND = CONTACTS_TASK
REQUIRED_COLUMNS = ("pdb_id", "chain", "resnum", "aa", "na_types", "na_sequences")


@dataclass
class ContactSite:
    """One protein chain with the nucleic acids it binds, and (for training) its contact labels."""

    name: str  # pdb_id:chain
    protein: str
    na_sequences: list[str]
    na_types: list[str]
    residue_ids: list[str]  # resnum + insertion code, for output
    labels: np.ndarray | None = None  # (n_residues, n_cutoffs) of 0/1

    def segments(self) -> list[Segment]:
        return [Segment(self.protein, "protein", self.name)] + [
            Segment(seq, kind, f"{self.name} nucleic acid {i + 1}")
            for i, (seq, kind) in enumerate(zip(self.na_sequences, self.na_types))
        ]


def cutoff_columns(columns) -> dict[float, str]:
    """``contact_4``, ``contact_6.5`` ... → {4.0: "contact_4", 6.5: "contact_6.5"}."""
    found = {}
    for column in columns:
        if column.startswith("contact_"):
            try:
                found[float(column[len("contact_") :])] = column
            except ValueError:
                continue
    return dict(sorted(found.items()))


def read_contact_labels(path: str | Path) -> tuple[list[ContactSite], tuple[float, ...]]:
    """Sites of an `obte contacts labels` TSV (rows grouped by pdb_id and chain, in file order)."""
    # `contacts labels` never quotes a field: a '"' is a character, and no field holds a line break
    table = read_table(path, dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    if not isinstance(table.index, pd.RangeIndex):  # pandas took the extra first field of every row as an index
        raise InputError(f"{path}: the rows have more fields than the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    cutoffs = cutoff_columns(table.columns)
    if missing or not cutoffs:
        need = ", ".join(missing + ([] if cutoffs else ["contact_<Å> columns"]))
        raise InputError(f"{path}: not an `obte contacts labels` table (missing {need})")
    if table.empty:
        raise InputError(f"{path}: no residues")
    sites = []
    for (pdb_id, chain), rows in table.groupby(["pdb_id", "chain"], sort=False):
        name = f"{pdb_id}:{chain}"
        try:
            labels = rows[list(cutoffs.values())].astype(int).to_numpy()
        except (ValueError, OverflowError):
            raise InputError(f"{path}: site {name}: contact columns must be 0 or 1") from None
        if not set(np.unique(labels)) <= {0, 1}:
            raise InputError(f"{path}: site {name}: contact columns must be 0 or 1")
        # one letter per row, or the residues and their labels drift apart (a wrong-length protein)
        bad = next(((i, a) for i, a in zip(rows.index, rows["aa"]) if len(a) != 1 or not a.isalpha()), None)
        if bad is not None:
            raise InputError(
                f"{path}: line {bad[0] + 2} (site {name}): aa must be one amino-acid letter (got {bad[1][:10]!r})"
            )
        na_sequences = rows["na_sequences"].iat[0].split(",")
        na_types = rows["na_types"].iat[0].split(",")
        if len(na_sequences) != len(na_types) or not all(na_sequences):
            raise InputError(
                f"{path}: site {name}: na_sequences and na_types must list the same number of non-empty entries "
                f"(got {len(na_sequences)} and {len(na_types)})"
            )
        icode = rows["icode"] if "icode" in rows.columns else [""] * len(rows)
        sites.append(
            ContactSite(
                name,
                "".join(rows["aa"]),
                na_sequences,
                na_types,
                [f"{r}{i}" for r, i in zip(rows["resnum"], icode)],
                labels,
            )
        )
    return sites, tuple(cutoffs)


# ------------------------------------------------------------------------------------------------ encoding
def encode_site(tokenizer: Tokenizer, site: ContactSite, context: int, truncate: bool = True) -> Encoding:
    """Encode a site; unknown residues (X, modified nucleotides written N) become ``<unk>`` (a caller that
    wants them refused checks the sites first, :func:`~obte_cli.engine.tokenizers.base.check_standard`). Too
    long: an error, or the protein is cut at its C-terminal end (its cut residues get no prediction)."""
    segments = site.segments()
    encoding = tokenizer.encode_one(segments, on_unknown="unk")
    if len(encoding) <= context:
        return encoding
    if not truncate:
        raise InputError(f"site '{site.name}': {len(encoding)} tokens exceed the model's context of {context}")
    return encode_prefix_to_fit(
        tokenizer,
        segments,
        context,
        f"site '{site.name}': the nucleic acids alone exceed the model's context of {context}",
        on_unknown="unk",
    )


def protein_token_targets(encoding: Encoding, labels: np.ndarray) -> np.ndarray:
    """(T, n_cutoffs) targets: the fraction of each protein token's residues in contact; NaN elsewhere."""
    return residue_labels_to_tokens(encoding, labels, lambda rows: rows.mean(axis=0), np.nan, np.float32)


# ------------------------------------------------------------------------------------------------ metrics
def best_f1_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The threshold that maximises F1 on (probabilities, labels): every distinct score is tried."""
    order = np.argsort(-probabilities, kind="stable")
    scores, truth = probabilities[order], labels[order].astype(bool)
    positives = truth.sum()
    if positives == 0:
        return 1.0
    tp = np.cumsum(truth)
    called = np.arange(1, len(scores) + 1)
    f1 = 2 * tp / (called + positives)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # a threshold calls every tied score together
    best = int(np.argmax(np.where(last_of_tie, f1, -1)))
    return float(scores[best])


def random_guess_f1(positive_rate: float) -> float:
    """The best F1 of a guess that ignores the input: calling every residue a contact, 2p / (1 + p)
    (a guess calling a random fraction q scores 2pq / (p + q), which grows with q)."""
    return 2 * positive_rate / (1 + positive_rate) if positive_rate > 0 else 0.0


def roc_auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import rankdata

    truth = labels.astype(bool)
    n_pos, n_neg = truth.sum(), (~truth).sum()
    if not n_pos or not n_neg:
        return math.nan
    ranks = rankdata(probabilities)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ------------------------------------------------------------------------------------------------ model
def contact_head(width: int, cutoffs: tuple[float, ...]) -> LinearHead:
    """One logit per cutoff on every token (a :class:`LinearHead` applied token-wise)."""
    return LinearHead(width, len(cutoffs))


CONTACT_TASK = TokenTask("bce")  # one logit per cutoff on every token; protein tokens carry the targets


def train_contact_head(
    model,
    tokenizer: Tokenizer,
    sites: list[ContactSite],
    encodings: list[Encoding],
    settings: FinetuneSettings,
    cutoffs: tuple[float, ...],
    device="cpu",
    on_step=None,
) -> LinearHead:
    """Fine-tune ``model`` and a fresh contact head on ``sites`` (BCE on protein tokens)."""
    torch.manual_seed(settings.seed)
    head = contact_head(model.config.width, cutoffs)
    targets = [protein_token_targets(e, s.labels) for e, s in zip(encodings, sites)]
    fine_tune(
        model, head, CONTACT_TASK, [e.ids for e in encodings], targets, settings, tokenizer.pad_id, device, on_step
    )
    return head


def predict_contact_probabilities(
    model, head, encodings: list[Encoding], n_residues: list[int], pad_id: int, device="cpu", max_tokens: int = 16384
) -> list[np.ndarray]:
    """P(contact) per protein residue and cutoff, (n_residues, n_cutoffs) per site, in input order."""
    probabilities = CONTACT_TASK.predict(model, head, [e.ids for e in encodings], pad_id, device, max_tokens)
    return [token_values_to_residues(e, p, n) for e, p, n in zip(encodings, probabilities, n_residues)]


def fit_thresholds(probabilities: list[np.ndarray], sites: list[ContactSite]) -> list[float]:
    """Per cutoff, the F1-maximising threshold over the given (training) sites."""
    p = np.concatenate(probabilities)
    y = np.concatenate([s.labels for s in sites])
    keep = ~np.isnan(p[:, 0])
    return [best_f1_threshold(p[keep, c], y[keep, c]) for c in range(y.shape[1])]


# ------------------------------------------------------------------------------------------------ predictor
@dataclass
class ContactPredictor:
    """A backbone with its contact head (``method="head"``) or attention probe (``"attention"``),
    the cutoffs it predicts and the F1 thresholds fitted on its training sites."""

    model: object
    tokenizer: Tokenizer
    method: str
    module: torch.nn.Module
    cutoffs: tuple[float, ...]
    thresholds: list[float]
    context: int

    def encode(self, sites: list[ContactSite], truncate: bool = True) -> list[Encoding]:
        return [encode_site(self.tokenizer, s, self.context, truncate) for s in sites]

    def predict(
        self, sites: list[ContactSite], encodings: list[Encoding] | None = None, device="cpu"
    ) -> list[np.ndarray]:
        encodings = encodings if encodings is not None else self.encode(sites)
        lengths = [len(s.protein) for s in sites]
        if self.method == "head":
            return predict_contact_probabilities(
                self.model, self.module, encodings, lengths, self.tokenizer.pad_id, device
            )
        from obte_cli.engine.contacts.probe import predict_probe

        return predict_probe(self.model, self.module, encodings, lengths, device)

    def describe(self) -> dict:
        return {
            **self.module.describe(),
            "task": HEAD_KIND,
            "method": self.method,
            "cutoffs": list(self.cutoffs),
            "thresholds": self.thresholds,
            "context": self.context,
        }

    def save(self, directory: str | Path, metadata: dict | None = None) -> None:
        from obte_cli.engine.model.directory import save_model

        save_model(
            directory,
            self.model,
            self.tokenizer,
            head=self.describe(),
            head_state=self.module.state_dict(),
            metadata=metadata,
            overwrite=True,
        )


def fit_contact_predictor(
    model,
    tokenizer: Tokenizer,
    sites: list[ContactSite],
    encodings: list[Encoding],
    cutoffs: tuple[float, ...],
    method: str,
    settings: FinetuneSettings,
    probe_settings=None,
    device="cpu",
    context: int | None = None,
    on_step=None,
) -> ContactPredictor:
    """Train a head (fine-tuning the backbone) or an attention probe (backbone frozen) on ``sites``,
    then fit the per-cutoff F1 thresholds on the same sites."""
    if method == "head":
        module = train_contact_head(model, tokenizer, sites, encodings, settings, cutoffs, device, on_step)
    elif method == "attention":
        from obte_cli.engine.contacts.probe import train_probe

        module = train_probe(model, sites, encodings, cutoffs, probe_settings, device, on_step)
    else:
        raise ValueError(f"unknown contact method {method!r}")
    predictor = ContactPredictor(model, tokenizer, method, module, cutoffs, [], context or model.config.max_positions)
    predictor.thresholds = fit_thresholds(predictor.predict(sites, encodings, device), sites)
    return predictor


def load_contact_predictor(directory: str | Path) -> ContactPredictor:
    """A model directory written by `obte finetune contacts` (its ``config.json`` head says how;
    :func:`~obte_cli.engine.model.directory.load_model` has checked every field and weight of it)."""
    from obte_cli.engine.model.directory import load_model

    loaded = load_model(directory)
    head = loaded.head or {}
    if head.get("task") != HEAD_KIND:
        raise InputError(f"{directory}: not a contact model (train one with `obte finetune contacts`)")
    module = build_head(head, loaded.model.config.width)
    module.load_state_dict(loaded.head_state)
    return ContactPredictor(
        loaded.model.eval(),
        loaded.tokenizer,
        head["method"],
        module.eval(),
        tuple(float(c) for c in head["cutoffs"]),
        [float(t) for t in head["thresholds"]],
        int(head["context"]),
    )
