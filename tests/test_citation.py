"""CITATION.cff (#33 §6): valid Citation File Format 1.2.0 — checked with cffconvert against the official schema
where it is installed (the test extra), and always against the schema's essentials — citing obte and, as a
reference, the OmniBioTE paper (arXiv 2408.16245); its version is the package's."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

import obte_cli

CITATION = REPO / "CITATION.cff"


def _yaml(text: str):
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with the test extra's transformers) reads the CFF")
    return yaml.safe_load(text)


def essentials_problems(cff) -> list[str]:
    """What the CFF 1.2.0 schema requires of a software citation with references, as a list of problems: the
    required keys cff-version, message, title and authors; each author a person (family-names) or an entity
    (name); each reference a type, a title and authors of the same kind."""
    problems = []
    if not isinstance(cff, dict):
        return ["not a YAML mapping"]
    if cff.get("cff-version") != "1.2.0":
        problems.append(f"cff-version is {cff.get('cff-version')!r}, not '1.2.0'")
    for key in ("message", "title"):
        if not isinstance(cff.get(key), str) or not cff[key].strip():
            problems.append(f"{key} is missing or empty")

    def check_authors(authors, where: str) -> None:
        if not isinstance(authors, list) or not authors:
            problems.append(f"{where}: authors must be a non-empty list")
            return
        for k, author in enumerate(authors):
            if not isinstance(author, dict) or not (author.get("family-names") or author.get("name")):
                problems.append(f"{where}: author {k + 1} has neither family-names nor name")

    check_authors(cff.get("authors"), "citation")
    references = cff.get("references", [])
    if not isinstance(references, list):
        problems.append("references must be a list")
        references = []
    for k, reference in enumerate(references):
        where = f"reference {k + 1}"
        if not isinstance(reference, dict):
            problems.append(f"{where} is not a mapping")
            continue
        for key in ("type", "title"):
            if not isinstance(reference.get(key), str) or not reference[key].strip():
                problems.append(f"{where}: {key} is missing or empty")
        check_authors(reference.get("authors"), where)
    return problems


def test_the_citation_file_is_valid_cff():
    cff = _yaml(CITATION.read_text())
    assert essentials_problems(cff) == []


def test_cffconvert_validates_it_against_the_official_schema():
    create = pytest.importorskip("cffconvert.cli.create_citation", reason="cffconvert is in the test extra")
    create.create_citation(infile=str(CITATION), url=None).validate()  # raises on any schema violation


def test_it_cites_obte_and_the_omnibiote_paper():
    cff = _yaml(CITATION.read_text())
    assert cff["type"] == "software" and cff["title"].startswith("obte") and cff["license"] == "MIT"
    assert str(cff["version"]) == obte_cli.__version__
    [paper] = [r for r in cff["references"] if "2408.16245" in r.get("url", "")]
    assert paper["type"] == "article" and "Multi-omic Biosequence Transformers" in paper["title"]
    assert [a["family-names"] for a in paper["authors"]][0] == "Chen" and paper["year"] == 2024
    assert {"type": "doi", "value": "10.48550/arXiv.2408.16245"}.items() <= paper["identifiers"][0].items()
    assert re.search(r"arxiv\.org/abs/2408\.16245", (REPO / "README.md").read_text())  # the README cites it too


@pytest.mark.parametrize(
    "broken, problem",
    [
        ("cff-version: 1.2.0\nmessage: cite\ntitle: obte\n", "citation: authors must be a non-empty list"),
        ("cff-version: 1.1.0\nmessage: cite\ntitle: obte\nauthors:\n  - name: x\n", "cff-version is '1.1.0'"),
        (
            "cff-version: 1.2.0\nmessage: cite\ntitle: obte\nauthors:\n  - name: x\nreferences:\n"
            "  - type: article\n    authors:\n      - given-names: Sully\n",
            "reference 1: title is missing",
        ),
    ],
)
def test_the_checks_can_fail(broken, problem, tmp_path):
    problems = essentials_problems(_yaml(broken))
    assert any(p.startswith(problem) for p in problems), problems
    create = pytest.importorskip("cffconvert.cli.create_citation", reason="cffconvert is in the test extra")
    path = tmp_path / "CITATION.cff"
    path.write_text(broken)
    with pytest.raises(Exception):  # noqa: B017 - jsonschema's or pykwalify's error, by cffconvert version
        create.create_citation(infile=str(path), url=None).validate()
