"""The :class:`Puzzle` dataclass: one CellPuzzles record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sc_cello1._answer import (
    ANSWER_OPEN,
    ANSWER_SEP,
    ITEM_SEP,
    THINK_OPEN,
    extract_answer,
    join_items,
    split_items,
)

from ._prompts import (
    SYSTEM_MSG,
    PromptStyle,
    build_messages,
    parse_user_msg,
    render_user_msg,
)


@dataclass
class Puzzle:
    r"""One CellPuzzles batch: N cells of one donor and N candidate cell types.

    Parameters
    ----------
    context
        The donor context sentence (without the ``"Context: "`` prefix).
    genes
        One list of gene names per cell, highest expression first.
    candidates
        Candidate cell types, in the order they are shown (``sorted()`` order for
        puzzles built by :func:`~sc_cello1.data.build_puzzles`).
    answer
        The true cell type of each cell, in cell order, or ``None`` if unknown.
    cell_ids
        ``obs_names`` of the cells, in cell order (empty for records read from files).
    group
        The donor / batch group the cells come from.
    assistant_text
        A verbatim assistant message to use as the training target instead of the bare
        answer (for example a reasoning trace ``<think>...</think>\n<answer>...</answer>``
        from the public ``reasoning`` split). ``None``: the answer joined by ``" | "``.
    system_text
        The system message; the CellPuzzles one unless a record carried another.
    meta
        Free-form extra information (source file, sizes, ...); not part of the prompt.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> p = cello1.data.Puzzle(
    ...     context="The cell is from a female.",
    ...     genes=[["CD3E", "CD2"], ["MS4A1", "CD79A"]],
    ...     candidates=["B cell", "T cell"],
    ...     answer=["T cell", "B cell"],
    ... )
    >>> p.assistant_msg
    'T cell | B cell'
    """

    context: str
    genes: list[list[str]]
    candidates: list[str]
    answer: list[str] | None = None
    cell_ids: list[str] = field(default_factory=list)
    group: str = ""
    assistant_text: str | None = None
    system_text: str = SYSTEM_MSG
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.genes:
            msg = "A Puzzle needs at least one cell (`genes` is empty)."
            raise ValueError(msg)
        if self.answer is not None and len(self.answer) != len(self.genes):
            msg = (
                f"`answer` has {len(self.answer)} labels but the puzzle has {len(self.genes)} "
                "cells; give one label per cell, in cell order."
            )
            raise ValueError(msg)
        if self.cell_ids and len(self.cell_ids) != len(self.genes):
            msg = f"`cell_ids` has {len(self.cell_ids)} ids but the puzzle has {len(self.genes)} cells."
            raise ValueError(msg)
        if len(set(self.candidates)) != len(self.candidates):
            dups = sorted({c for c in self.candidates if self.candidates.count(c) > 1})
            msg = f"Duplicate candidate labels {dups}: each candidate must appear once."
            raise ValueError(msg)

    @property
    def n_cells(self) -> int:
        """Number of cells N."""
        return len(self.genes)

    @property
    def system_msg(self) -> str:
        """The system message."""
        return self.system_text

    @property
    def user_msg(self) -> str:
        """The user message, byte-identical to the authors' format."""
        return render_user_msg(self.context, self.genes, self.candidates)

    @property
    def assistant_msg(self) -> str | None:
        """Return the target text (:attr:`~sc_cello1.data.Puzzle.assistant_text` if set, else the answer joined by ``" | "``)."""
        if self.assistant_text is not None:
            return self.assistant_text
        if self.answer is None:
            return None
        return join_items(self.answer)

    def messages(
        self, style: PromptStyle = "eval", *, with_answer: bool = False
    ) -> list[dict[str, str]]:
        """Chat messages for this puzzle (see :func:`~sc_cello1.data.build_messages`).

        Parameters
        ----------
        style
            ``"eval"`` (the paper's evaluation prompt), ``"sft"`` or ``"rl"``.
        with_answer
            Append :attr:`assistant_msg` as the assistant turn.
        """
        assistant = None
        if with_answer:
            assistant = self.assistant_msg
            if assistant is None:
                msg = "This puzzle has no answer; `with_answer=True` needs `answer` or `assistant_text`."
                raise ValueError(msg)
        return build_messages(
            self.user_msg, style=style, system_msg=self.system_msg, assistant_msg=assistant
        )

    def to_record(self) -> dict[str, str]:
        """Return the CellPuzzles record: ``system_msg``, ``user_msg``, ``assistant_msg``."""
        return {
            "system_msg": self.system_msg,
            "user_msg": self.user_msg,
            "assistant_msg": self.assistant_msg or "",
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Puzzle:
        """Parse a CellPuzzles record (``system_msg``, ``user_msg``, ``assistant_msg``).

        The target may also be given as ``answer``. A target holding ``<answer>`` tags
        (the public ``reasoning`` split) is kept verbatim in :attr:`~sc_cello1.data.Puzzle.assistant_text` and
        its answer is extracted. ``Puzzle.from_record(r).to_record() == r`` byte for byte.

        Raises
        ------
        ValueError
            If ``user_msg`` is missing or not in the CellPuzzles layout.
        """
        if not isinstance(record, Mapping):
            msg = f"A CellPuzzles record must be a mapping, got {type(record).__name__}."
            raise TypeError(msg)
        if "user_msg" not in record or not isinstance(record["user_msg"], str):
            msg = f"record has no string 'user_msg' (keys: {sorted(record)})."
            raise ValueError(msg)
        context, genes, candidates = parse_user_msg(record["user_msg"])
        system = record.get("system_msg")
        system = SYSTEM_MSG if system is None else str(system)
        target = record.get("assistant_msg", record.get("answer"))
        answer: list[str] | None = None
        assistant_text: str | None = None
        if target is not None and str(target) != "":
            target = str(target)
            if ANSWER_OPEN in target or THINK_OPEN in target:
                assistant_text = target
                items = split_items(extract_answer(target))
            else:
                items = [s.strip() for s in target.split(ITEM_SEP)]
                if ANSWER_SEP.join(items) != target:
                    assistant_text = target
                items = [s for s in items if s]
            if len(items) == len(genes):
                answer = items
            else:
                assistant_text = target
        elif target == "":
            assistant_text = None
        return cls(
            context=context,
            genes=genes,
            candidates=candidates,
            answer=answer,
            assistant_text=assistant_text,
            system_text=system,
        )
