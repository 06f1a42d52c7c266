from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sc_cello1.data import CONTEXT_FIELDS, context_sentence
from sc_cello1.data._context import puzzle_context
from tests.data import _authors

SPEC_EXAMPLE = "The cell is from a female at the 65-year-old stage with European background, originating from the lung. The patient has been diagnosed with lung adenocarcinoma."


def _authors_context(row) -> str:
    # build_context.py writes "<sentence> Top expressed genes are: ..."; match_qa.py
    # keeps the text before the marker (with its trailing space); we compare stripped.
    text = _authors.build_context_text(row, ["G1"])
    return text.split("Top expressed genes are")[0].rstrip(" ")


def test_spec_example():
    row = {
        "sex": "female",
        "development_stage": "65-year-old stage",
        "self_reported_ethnicity": "European",
        "tissue": "lung",
        "disease": "lung adenocarcinoma",
    }
    assert context_sentence(row) == SPEC_EXAMPLE
    assert context_sentence(pd.Series(row)) == SPEC_EXAMPLE


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, "The cell is from"),
        (
            {"disease": "Normal"},
            "The cell is from. The patient is healthy with no diagnosed disease.",
        ),
        ({"sex": "unknown", "tissue": "blood"}, "The cell is from, originating from the blood"),
        ({"sex": " NA ", "development_stage": np.nan, "disease": None}, "The cell is from"),
        ({"sex": "male", "self_reported_ethnicity": "none"}, "The cell is from a male"),
    ],
)
def test_missing_values_are_skipped(row, expected):
    assert context_sentence(row) == expected


def test_matches_authors_on_real_obs(shared_data):
    import anndata as ad

    a = ad.read_h5ad(shared_data / "kang2018_muscat_example.h5ad")
    rng = np.random.default_rng(0)
    n = a.n_obs
    a.obs["sex"] = rng.choice(["female", "male", "unknown"], n)
    a.obs["development_stage"] = rng.choice(["30-year-old stage", "nan", ""], n)
    a.obs["self_reported_ethnicity"] = rng.choice(["Asian", "European", "na"], n)
    a.obs["tissue"] = rng.choice(["blood", "None"], n)
    a.obs["disease"] = rng.choice(["normal", "systemic lupus erythematosus", "unknown"], n)
    for i in range(0, n, 7):
        row = a.obs.iloc[i]
        assert context_sentence(row) == _authors_context(row.to_dict())


def test_context_fields():
    row = {"sex": "male", "smoker": "yes", "bmi": np.nan}
    assert (
        context_sentence(row, context_fields=["smoker", "bmi"])
        == "The cell is from a male. Smoker: yes."
    )
    assert context_sentence(row, context_fields={"smoker": "Smoking status"}) == (
        "The cell is from a male. Smoking status: yes."
    )
    with pytest.warns(FutureWarning, match="context_fields"):
        old = context_sentence(row, extra_fields=["smoker"])
    assert old == "The cell is from a male. Smoker: yes."


def test_context_fields_constant():
    assert CONTEXT_FIELDS == (
        "sex",
        "development_stage",
        "self_reported_ethnicity",
        "tissue",
        "disease",
    )


def test_puzzle_context_one_rule_for_build_puzzles_and_annotate():
    obs = pd.DataFrame(
        {"sex": ["female", "male"], "tissue": ["lung", "blood"], "smoker": ["yes", "no"]},
        index=["a", "b"],
    )
    assert puzzle_context(obs, [1, 0], context=None) == (
        "The cell is from a male, originating from the blood"
    )
    assert puzzle_context(obs, [0], context=None, context_fields=["smoker"]).endswith(
        "Smoker: yes."
    )
    assert puzzle_context(obs, [0, 1], context="Given.") == "Given."
    seen = []
    assert puzzle_context(obs, [1, 0], context=lambda rows: seen.append(rows) or "Rows.") == (
        "Rows."
    )
    assert list(seen[0].index) == ["b", "a"]  # the puzzle's rows, in cell order
    assert puzzle_context(obs, [0], context=None, fallback="None known.") == "None known."
    # context_fields win over the fallback: the sentence is built
    assert puzzle_context(obs, [0], context=None, context_fields=["smoker"], fallback="x").endswith(
        "Smoker: yes."
    )
    with pytest.raises(TypeError, match="puzzle of cell 'b'"):
        puzzle_context(obs, [1], context=lambda rows: None)
    with pytest.raises(ValueError, match="more than one line"):
        puzzle_context(obs.assign(tissue=["lung\nleft", "blood"]), [0], context=None)
