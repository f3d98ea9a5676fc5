"""Structure inputs of the contact commands."""

import pytest

from obte_cli.engine.contacts.io import structure_files
from obte_cli.engine.core.errors import InputError


def test_structure_inputs_expand_directories_and_refuse_empty_or_missing_ones(tmp_path):
    (tmp_path / "a.cif.gz").write_bytes(b"")
    (tmp_path / "b.PDB").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in structure_files([tmp_path])] == ["a.cif.gz", "b.PDB"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no structure files"):
        structure_files([tmp_path / "empty"])
    with pytest.raises(InputError, match="no such file"):
        structure_files([tmp_path / "missing"])

