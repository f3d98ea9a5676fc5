"""Contacts predicted on inputs longer than the model's context: proteins and nucleic acids in windows."""

import numpy as np


def test_a_long_nucleic_acid_is_read_in_windows_and_a_contact_with_any_of_them_counts():
    """A protein with a 1.2 kb DNA (more than the bundled model's context): every residue is predicted, and its
    P(contact) is the highest over the nucleic-acid windows of what each window alone predicts."""
    from obte_cli.engine.contacts.prediction import nucleic_windows, predict_windowed
    from obte_cli.engine.contacts.predictor import load_contact_predictor
    from obte_cli.engine.contacts.sites import ContactSite
    from obte_cli.engine.core.resources import default_contacts_model_dir

    rng = np.random.default_rng(1)
    protein = "MSDNKKPRKTRTSFTAEQLEELEKEFHFNRYLTRRRRIEIAHALCLTERQIKIWFQNRRMKWKK"  # a homeodomain
    dna = "".join(rng.choice(list("ACGT"), 1200))
    predictor = load_contact_predictor(default_contacts_model_dir())
    site = ContactSite("hox", protein, [dna], ["DNA"], [str(i + 1) for i in range(len(protein))])
    pieces = nucleic_windows(predictor, site)
    assert len(pieces) > 2 and "".join(p[0] for p in pieces[::2]).startswith(dna[:500])
    assert all(len(p[0]) + len(protein) + 4 <= predictor.context for p in pieces)  # each window fits whole
    (probabilities,), (windows,) = predict_windowed(predictor, [site])
    assert windows == len(pieces) and not np.isnan(probabilities).any()
    alone = [
        predictor.predict([ContactSite("hox", protein, strands, ["DNA"], site.residue_ids)])[0] for strands in pieces
    ]
    assert np.allclose(probabilities, np.max(alone, axis=0), atol=1e-6)
