"""`obte bench contacts`' plan: which predictors run, in which order (the CLI test runs the bench itself)."""

from pathlib import Path

from obte_cli.engine.bench.contacts import ContactBench


def test_the_baseline_runs_once_first_then_each_method_once_per_backbone():
    base, tuned = Path("base"), Path("tuned")
    bench = ContactBench([base, tuned], ("head", "propensity", "attention", "head"))
    assert bench.runs() == [
        (None, "propensity"),
        (base, "head"),
        (base, "attention"),
        (tuned, "head"),
        (tuned, "attention"),
    ]
    assert ContactBench([base], ("attention",)).runs() == [(base, "attention")]
    assert ContactBench([base, tuned], ("propensity",)).runs() == [(None, "propensity")]  # no model to load
