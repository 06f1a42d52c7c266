"""Constrained decoding of the ``<answer>`` part with transformers.

Reasoning is generated freely. Once the model closes its reasoning (``</think>``), writes
``<answer>``, or spends its think budget, the answer is decoded under a token-level
automaton: items are candidate labels (each at most once when ``unique``) joined by
``" | "``, exactly ``n_items`` of them, then ``</answer>`` and the end-of-sequence token.
Labels are tokenised in the context they appear in (after ``<answer>`` or after
``" | "``), and every segment is checked to decode back to its exact text, so the
answer text is a valid permutation whatever the tokeniser's merges.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sc_cello1._answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from sc_cello1._answer import ANSWER_SEP as SEP

from ._base import AnswerConstraint

if TYPE_CHECKING:
    import torch

_CLOSE = "\x00close"
_DONE = "\x00done"
_THINK_END = re.compile(re.escape(THINK_CLOSE) + r"(\s*)$")
_TAIL_TOKENS = 8

# phases of one row
START, FREE, FORCE, ANSWER, DONE = range(5)


def encode_in_context(tokenizer: Any, text: str, before: str) -> list[int]:
    """Token ids of ``text`` as it is tokenised right after ``before``.

    Falls back to tokenising ``text`` alone when the tokens of ``before`` are not a
    prefix of those of ``before + text``. The result always decodes to ``text``.

    Raises
    ------
    ValueError
        If no tokenisation of ``text`` decodes back to it.
    """
    full = tokenizer.encode(before + text, add_special_tokens=False)
    head = tokenizer.encode(before, add_special_tokens=False)
    tries = []
    if full[: len(head)] == head:
        tries.append(full[len(head) :])
    tries.append(tokenizer.encode(text, add_special_tokens=False))
    for ids in tries:
        if ids and tokenizer.decode(ids, skip_special_tokens=False) == text:
            return list(ids)
    msg = f"The tokenizer cannot represent {text!r} as tokens that decode back to it; constrained decoding is not possible for this label."
    raise ValueError(msg)


@dataclass
class _Grammar:
    """Token sequences of one constraint's answer segments."""

    constraint: AnswerConstraint
    first: dict[str, tuple[int, ...]]
    following: dict[str, tuple[int, ...]]
    close: tuple[int, ...]

    @classmethod
    def build(cls, tokenizer: Any, constraint: AnswerConstraint) -> _Grammar:
        first = {
            c: tuple(encode_in_context(tokenizer, c, ANSWER_OPEN)) for c in constraint.candidates
        }
        following = {
            c: tuple(encode_in_context(tokenizer, SEP + c, ANSWER_OPEN + constraint.candidates[0]))
            for c in constraint.candidates
        }
        close = tuple(encode_in_context(tokenizer, ANSWER_CLOSE, constraint.candidates[0]))
        return cls(constraint, first, following, close)

    def max_answer_tokens(self) -> int:
        """Upper bound on the tokens of a complete answer, ``</answer>`` included."""
        n = self.constraint.n_items
        longest_first = max(len(s) for s in self.first.values())
        longest_next = max(len(s) for s in self.following.values())
        return longest_first + (n - 1) * longest_next + len(self.close)

    def options(self, used: tuple[str, ...]) -> list[tuple[str, tuple[int, ...]]]:
        c = self.constraint
        if len(used) >= c.n_items:
            return [(_CLOSE, self.close)]
        segs = self.following if used else self.first
        return [(lab, segs[lab]) for lab in c.candidates if not (c.unique and lab in used)]

    def closure(self, hyps: set[tuple[tuple[str, ...], tuple[int, ...]]]) -> set:
        out = set()
        todo = list(hyps)
        while todo:
            used, prefix = todo.pop()
            if used and used[-1] == _DONE:
                out.add((used, prefix))
                continue
            out.add((used, prefix))
            for label, seq in self.options(used):
                if seq == prefix:
                    nxt = ((*used, _DONE), ()) if label == _CLOSE else ((*used, label), ())
                    if nxt not in out:
                        todo.append(nxt)
        return out

    def allowed(self, hyps: set) -> tuple[set[int], bool]:
        tokens: set[int] = set()
        done = False
        for used, prefix in hyps:
            if used and used[-1] == _DONE:
                done = True
                continue
            k = len(prefix)
            for _, seq in self.options(used):
                if len(seq) > k and seq[:k] == prefix:
                    tokens.add(seq[k])
        return tokens, done

    def advance(self, hyps: set, token: int) -> set:
        new = set()
        for used, prefix in hyps:
            if used and used[-1] == _DONE:
                continue
            k = len(prefix)
            for _, seq in self.options(used):
                if len(seq) > k and seq[:k] == prefix and seq[k] == token:
                    new.add((used, (*prefix, token)))
        return self.closure(new)


@dataclass
class _Row:
    grammar: _Grammar | None
    budget: int
    phase: int = START
    forced: list[int] = field(default_factory=list)
    after_force: int = ANSWER
    hyps: set = field(default_factory=set)
    generated: list[int] = field(default_factory=list)


class AnswerLogitsProcessor:
    """A transformers ``LogitsProcessor`` that makes every answer a valid permutation.

    Parameters
    ----------
    tokenizer
        The model's tokenizer.
    constraints
        One :class:`AnswerConstraint` (or ``None``: unconstrained) per row of the batch
        (prompts repeated ``n`` times, as ``num_return_sequences`` lays them out).
    prompt_length
        Length of the (left-padded) prompt tensor.
    max_new_tokens
        The generation cap; the think budget leaves room for the answer within it.
    eos_token_ids
        End-of-sequence ids; banned before the answer is complete, the first one is
        forced after ``</answer>``.
    prompt_ends_in_think
        Whether the prompt already opens the reasoning (then ``<think>`` is not forced).
    """

    def __init__(
        self,
        tokenizer: Any,
        constraints: Sequence[AnswerConstraint | None],
        *,
        prompt_length: int,
        max_new_tokens: int,
        eos_token_ids: Sequence[int],
        prompt_ends_in_think: Sequence[bool] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.eos = list(eos_token_ids)
        self._open = encode_in_context(tokenizer, THINK_OPEN, "\n")
        self._close_open = encode_in_context(tokenizer, THINK_CLOSE + "\n" + ANSWER_OPEN, ".")
        self._nl_open = encode_in_context(tokenizer, "\n" + ANSWER_OPEN, THINK_CLOSE)
        self._only_open = encode_in_context(tokenizer, ANSWER_OPEN, THINK_CLOSE + "\n")
        grammars: dict[AnswerConstraint, _Grammar] = {}
        self.rows: list[_Row] = []
        for i, c in enumerate(constraints):
            if c is None:
                self.rows.append(_Row(grammar=None, budget=max_new_tokens, phase=DONE))
                continue
            if c not in grammars:
                grammars[c] = _Grammar.build(tokenizer, c)
            g = grammars[c]
            reserve = len(self._close_open) + g.max_answer_tokens() + 1
            budget = (
                max_new_tokens - reserve
                if c.think_budget is None
                else min(c.think_budget, max_new_tokens - reserve)
            )
            skip_open = bool(prompt_ends_in_think and prompt_ends_in_think[i])
            if budget < (0 if skip_open else len(self._open)):
                msg = (
                    f"max_new_tokens={max_new_tokens} leaves no room for a constrained answer of "
                    f"{c.n_items} items; use max_new_tokens >= {reserve + len(self._open) + 1}."
                )
                raise ValueError(msg)
            row = _Row(grammar=g, budget=budget)
            if skip_open:
                row.phase = FREE
            else:
                self._force(row, self._open, then=FREE)
            self.rows.append(row)

    @staticmethod
    def required_tokens(tokenizer: Any, constraint: AnswerConstraint) -> int:
        """Return the fewest ``max_new_tokens`` that leave room for the forced parts and answer."""
        g = _Grammar.build(tokenizer, constraint)
        opn = encode_in_context(tokenizer, THINK_OPEN, "\n")
        close_open = encode_in_context(tokenizer, THINK_CLOSE + "\n" + ANSWER_OPEN, ".")
        return len(opn) + len(close_open) + g.max_answer_tokens() + 2

    # -- state machine ----------------------------------------------------------------
    def _start_answer(self, row: _Row) -> None:
        assert row.grammar is not None  # rows without a constraint start DONE
        row.phase = ANSWER
        row.hyps = row.grammar.closure({((), ())})

    @staticmethod
    def _force(row: _Row, ids: list[int], then: int = ANSWER) -> None:
        row.phase = FORCE
        row.forced = list(ids)
        row.after_force = then

    def _consume(self, row: _Row, token: int) -> None:
        row.generated.append(token)
        if row.phase == FORCE:
            if row.forced and token == row.forced[0]:
                row.forced.pop(0)
            if not row.forced:
                if row.after_force == FREE:
                    row.phase = FREE
                else:
                    self._start_answer(row)
            return
        if row.phase == FREE:
            tail = self.tokenizer.decode(row.generated[-_TAIL_TOKENS:], skip_special_tokens=False)
            m = _THINK_END.search(tail)
            if m is not None:
                self._force(row, self._nl_open if m.group(1) == "" else self._only_open)
            elif tail.rstrip(" \n").endswith(ANSWER_OPEN):
                self._start_answer(row)
            return
        if row.phase == ANSWER:
            assert row.grammar is not None  # only constrained rows reach ANSWER
            row.hyps = row.grammar.advance(row.hyps, token)
            _, done = row.grammar.allowed(row.hyps)
            if not row.hyps:
                row.phase = DONE
            elif done and all(u and u[-1] == _DONE for u, _ in row.hyps):
                row.phase = DONE

    def _allowed(self, row: _Row, n_generated: int) -> list[int] | None:
        """Return the allowed token ids, or ``None`` for unrestricted (EOS still banned in FREE)."""
        if row.grammar is None:
            return None
        if row.phase == FREE and n_generated >= row.budget:
            self._force(row, self._close_open)
        if row.phase == FORCE:
            return row.forced[:1]
        if row.phase == ANSWER:
            tokens, done = row.grammar.allowed(row.hyps)
            if done:
                tokens.add(self.eos[0])
            return sorted(tokens)
        if row.phase == DONE:
            return [self.eos[0]]
        return None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        n_generated = input_ids.shape[1] - self.prompt_length
        if n_generated > 0:
            last = input_ids[:, -1].tolist()
            for row, tok in zip(self.rows, last, strict=True):
                if row.grammar is not None and row.phase != DONE:
                    self._consume(row, int(tok))
        mask = torch.zeros_like(scores)
        any_mask = False
        neg = torch.finfo(scores.dtype).min
        for i, row in enumerate(self.rows):
            if row.grammar is None:
                continue
            allowed = self._allowed(row, n_generated)
            if allowed is None:
                mask[i, self.eos] = neg
            else:
                mask[i, :] = neg
                mask[i, allowed] = 0.0
            any_mask = True
        if not any_mask:
            return scores
        return torch.where(mask == 0, scores, torch.full_like(scores, neg))
