from __future__ import annotations

import pytest

from sc_cello1.inference import AnswerConstraint
from sc_cello1.inference._constrained import _DONE, _Grammar, encode_in_context


@pytest.fixture(scope="module")
def tok(tiny_qwen2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen2)


@pytest.mark.parametrize(
    "text", ["B cell", " | T cells activated", "</answer>", "CD14+ Mono", "Ünïcode cell"]
)
def test_encode_in_context_round_trips(tok, text):
    ids = encode_in_context(tok, text, "<answer>x")
    assert tok.decode(ids) == text


def test_grammar_handles_label_that_prefixes_another(tok):
    """'T cell' is a token prefix of 'T cells activated': both stay reachable."""
    c = AnswerConstraint(("T cell", "T cells activated"), 2)
    g = _Grammar.build(tok, c)
    hyps = g.closure({((), ())})
    text_ids: list[int] = []
    # walk the longer label first, then the shorter, always taking the smallest allowed id
    # that keeps us on the chosen path
    for target in [g.first["T cells activated"], g.following["T cell"], g.close]:
        for t in target:
            allowed, _ = g.allowed(hyps)
            assert t in allowed
            hyps = g.advance(hyps, t)
            text_ids.append(t)
    allowed, done = g.allowed(hyps)
    assert done and not allowed
    assert any(u and u[-1] == _DONE for u, _ in hyps)
    assert tok.decode(text_ids) == "T cells activated | T cell</answer>"


def test_grammar_forbids_repeats_when_unique(tok):
    c = AnswerConstraint(("B cell", "T cell"), 2)
    g = _Grammar.build(tok, c)
    hyps = g.closure({((), ())})
    for t in g.first["B cell"]:
        hyps = g.advance(hyps, t)
    # only the separator + T cell can follow; B cell again would be a dead end
    assert g.advance(hyps, g.following["T cell"][0])
    assert not g.advance(hyps, g.close[0]) or g.close[0] == g.following["T cell"][0]
    seq = g.following["B cell"]
    h = hyps
    for t in seq:
        h = g.advance(h, t)
        if not h:
            break
    assert not h or all("B cell" not in u[1:] for u, _ in h)
