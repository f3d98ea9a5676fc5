import math

import numpy as np
import pytest

from obte_cli.engine.affinity.complexes import (
    RT_KCAL,
    TargetScaler,
    complex_segments,
    encode_complex,
    kd_from_dg,
)
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.metrics import mean_and_sem, regression_metrics


def test_kd_from_dg_agrees_with_pronab_records(pronab):
    """ProNAB stores both Kd and ΔG. Its ΔG were measured at various temperatures (4–37 °C), so the
    298.15 K conversion is exact only for part of the rows, but must be centred on the records."""
    pairs = np.array([(kd, dg) for e in pronab.values() for _, _, kd, dg, _ in e["binding data"] if kd > 0 and dg != 0])
    assert len(pairs) > 500
    dg_from_kd = RT_KCAL * np.log(pairs[:, 0])
    difference = dg_from_kd - pairs[:, 1]
    assert abs(np.median(difference)) < 0.05
    assert np.mean(np.abs(difference) < 0.05) > 0.5 and np.mean(np.abs(difference) < 1.0) > 0.95
    np.testing.assert_allclose(kd_from_dg(dg_from_kd), pairs[:, 0], rtol=1e-9)
    assert RT_KCAL == pytest.approx(0.5925, abs=1e-4)


def test_layout_protein_strand_complement(mixed_tokenizer):
    segments = complex_segments("MKVLAAG", "ACGTAC", "GTACGT", "DNA", "P1")
    encoding, cut = encode_complex(mixed_tokenizer, segments, context=1024)
    assert cut == 0
    assert encoding.ids[0] == 18  # <protein>
    assert encoding.ids.tolist().count(4) == 2  # <DNA> twice: strand and complement
    assert sorted(set(encoding.segment.tolist())) == [0, 1, 2]


def test_overlong_input_is_an_error_or_cuts_only_the_protein(residue_tokenizer, mixed_tokenizer, pronab):
    protein = max((e["Sequence"] for e in pronab.values()), key=len)  # 1,901 residues
    segments = complex_segments(protein, "ACGTACGTACGTAA", "TTACGTACGTACGT", "DNA", "big")
    with pytest.raises(InputError, match="record 'big': .* exceed the model's context of 512"):
        encode_complex(residue_tokenizer, segments, context=512)
    for tokenizer in (residue_tokenizer, mixed_tokenizer):
        encoding, cut = encode_complex(tokenizer, segments, context=512, truncate=True)
        assert len(encoding) <= 512 and cut > 0
        assert (encoding.segment == 2).sum() == (tokenizer.encode_one(segments[2:]).segment == 0).sum()  # NA kept whole
        assert len(encoding.residue_to_token(0)) == len(protein) - cut


def test_target_scaler_round_trip():
    values = np.array([-12.0, -9.5, -8.0, -10.1])
    scaler = TargetScaler.fit(values)
    z = scaler.transform(values)
    assert abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(scaler.inverse(z), values, atol=1e-5)


def test_metrics():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m["pcc"] == pytest.approx(np.corrcoef([1, 2, 3], [1, 2, 4])[0, 1])
    assert m["mae"] == pytest.approx(1 / 3) and m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    mean, sem = mean_and_sem([0.4, 0.5, 0.6])
    assert mean == pytest.approx(0.5) and sem == pytest.approx(0.1 / math.sqrt(3))
