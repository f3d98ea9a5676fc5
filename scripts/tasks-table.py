#!/usr/bin/env python3
"""The README's single-omic table from `obte bench tasks` output: one row per task, one column per model, its
fresh-init control last, and per model how many tasks it beats that control on.

    scripts/tasks-table.py TASKS_TSV [TASKS_TSV ...] > table.md

Several files (e.g. a run continued in another directory with `--task`) are read together; a (task, model,
init) present twice is an error. All models must share one architecture (one fresh control), as the
pretraining controls and the shipped backbone do; the script says so if they do not.
"""

from __future__ import annotations

import sys

import pandas as pd


def main(paths: list[str]) -> None:
    rows = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    twice = rows[rows.duplicated(["task", "model", "init"], keep=False)]
    if len(twice):
        sys.exit(f"rows present twice: {twice[['task', 'model', 'init']].drop_duplicates().values.tolist()}")
    fresh = rows[rows["init"] == "fresh"].pivot_table(index="task", columns="model", values="score", sort=False)
    if fresh.empty:
        sys.exit("no fresh-init rows (a run with --no-fresh-control): nothing to compare the models with")
    if (fresh.nunique(axis=1) > 1).any():
        sys.exit("the models have different fresh controls (different architectures): one table per architecture")
    given = rows[rows["init"] == "as given"]
    table = given.pivot_table(index="task", columns="model", values="score", sort=False)
    table["fresh init"] = fresh.iloc[:, 0]
    metric = rows.drop_duplicates("task").set_index("task")["metric"]
    models = [c for c in table.columns if c != "fresh init"]
    print("| task | metric | " + " | ".join(table.columns) + " |")
    print("|---|---|" + "---|" * len(table.columns))
    for task, scores in table.iterrows():
        best = scores.max()
        cells = [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in scores]
        print(f"| {task} | {metric[task]} | " + " | ".join(cells) + " |")
    wins = [f"{int((table[m] > table['fresh init']).sum())}/{len(table)}" for m in models]
    print("| beats fresh init on | | " + " | ".join(wins) + " | |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
