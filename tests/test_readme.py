"""The README's Python example runs as written: leiden clusters, then ``tl.annotate``.

The block is read from README.md, so the example cannot drift from what works. Only the
model is swapped: SmolLM2-135M-Instruct (the ``smollm2`` fixture) with small settings
instead of the 7B ``cell-o1``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = "n_samples=1, n_genes=10, max_new_tokens=96, constrained=True"


def readme_leiden_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if "sc.tl.leiden(" in b and "cello1.tl.annotate(" in b]
    assert found, (
        "README.md must show the leiden example: a ```python block with sc.tl.leiden(...) "
        'and cello1.tl.annotate(..., model="cell-o1")'
    )
    return found[0]


def test_readme_example_clusters_with_leiden_and_names_the_published_model():
    code = readme_leiden_example()
    assert 'model="cell-o1"' in code
    assert "import sc_cello1 as cello1" in code and "import scanpy as sc" in code


@pytest.mark.slow
def test_readme_leiden_example_runs(smollm2):
    code = readme_leiden_example().replace('model="cell-o1"', f"model={str(smollm2)!r}, {SMALL}")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    adata = namespace["adata"]
    assert adata.obs["leiden"].nunique() > 1
    uns = adata.uns["cello1"]
    assert uns["params"]["groupby"] == "leiden"
    assert len(uns["clusters"]) == adata.obs["leiden"].nunique()
    assert adata.obs["cello1"].notna().all()  # constrained: every cluster gets a vote
    assert set(adata.obs["cello1"].astype(str)) <= set(namespace["candidates"])
