"""The CellPuzzles prompt text, byte for byte as in the published data.

See ``CELLPUZZLES.md`` (the specification) and :class:`sc_cello1.data.Puzzle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

#: Version tag of the prompt text, recorded in ``uns[...]['params']``.
PROMPT_VERSION = "cellpuzzles-1"

#: The system message of every CellPuzzles record (one line, no trailing newline).
SYSTEM_MSG = (
    "You are an expert assistant specialized in cell type annotation. You will be given a "
    "batch of N cells from the same donor, where each cell represents a unique cell type. "
    "For each cell, the top expressed genes are provided in descending order of expression. "
    "Using both the gene expression data and donor information, determine the correct cell "
    "type for each cell. You will also receive a list of N candidate cell types, and each "
    "candidate must be assigned to exactly one cell. Ensure that you consider all cells and "
    "candidate types together, rather than annotating each cell individually. Include your "
    "detailed reasoning within <think> and </think> tags, and provide your final answer "
    "within <answer> and </answer> tags. The final answer should be a single string listing "
    "the assigned cell types in order, separated by ' | '."
)

CONTEXT_PREFIX = "Context: "
CONTEXT_SUFFIX = " \n\n"
CELL_LINE = "Cell {i}: {genes}"
GENE_SEP = ", "
MATCH_LINE = "\n\nMatch the cells above to one of the following cell types:\n"

PromptStyle = Literal["eval", "sft", "rl"]
#: The prompt layouts :func:`build_messages` knows.
PROMPT_STYLES: tuple[str, ...] = ("eval", "sft", "rl")


def render_user_msg(context: str, genes: Sequence[Sequence[str]], candidates: Sequence[str]) -> str:
    """Render a CellPuzzles ``user_msg`` from its parts (no validation)."""
    cells = "\n".join(
        CELL_LINE.format(i=i, genes=GENE_SEP.join(g)) for i, g in enumerate(genes, start=1)
    )
    return f"{CONTEXT_PREFIX}{context}{CONTEXT_SUFFIX}{cells}{MATCH_LINE}" + "\n".join(candidates)


def parse_user_msg(user_msg: str) -> tuple[str, list[list[str]], list[str]]:
    """Split a ``user_msg`` into context, per-cell gene lists and candidates.

    Raises
    ------
    ValueError
        If the text does not follow the CellPuzzles layout; the message says which
        part is missing.
    """
    if not user_msg.startswith(CONTEXT_PREFIX):
        msg = f"user_msg does not start with {CONTEXT_PREFIX!r}"
        raise ValueError(msg)
    head, sep, candidates_text = user_msg.partition(MATCH_LINE)
    if not sep:
        msg = "user_msg has no line 'Match the cells above to one of the following cell types:'"
        raise ValueError(msg)
    context, sep, cells_text = head[len(CONTEXT_PREFIX) :].partition(CONTEXT_SUFFIX)
    if not sep:
        msg = "user_msg has no blank line (' \\n\\n') after the context sentence"
        raise ValueError(msg)
    genes: list[list[str]] = []
    for i, line in enumerate(cells_text.split("\n"), start=1):
        prefix = f"Cell {i}: "
        if not line.startswith(prefix):
            msg = f"user_msg cell line {i} does not start with {prefix!r}: {line[:60]!r}"
            raise ValueError(msg)
        genes.append(line[len(prefix) :].split(GENE_SEP))
    candidates = candidates_text.split("\n")
    return context, genes, candidates


def build_messages(
    user_msg: str,
    *,
    style: PromptStyle = "eval",
    system_msg: str = SYSTEM_MSG,
    assistant_msg: str | None = None,
) -> list[dict[str, str]]:
    r"""Build the chat messages for one puzzle, in the layout the authors used.

    Parameters
    ----------
    user_msg
        The puzzle's ``user_msg``.
    style
        ``"eval"``: one user turn ``user_msg + "\n" + system_msg`` (the paper's
        evaluation and what the published Cell-o1 expects at inference);
        ``"sft"``: a system turn and a user turn; ``"rl"``: one user turn
        ``user_msg + " " + system_msg``.
    system_msg
        The system message (the CellPuzzles one by default).
    assistant_msg
        If given, appended as the assistant turn (for training).

    Returns
    -------
    A list of ``{"role": ..., "content": ...}`` dicts.
    """
    if style == "eval":
        messages = [{"role": "user", "content": user_msg + "\n" + system_msg}]
    elif style == "rl":
        messages = [{"role": "user", "content": user_msg + " " + system_msg}]
    elif style == "sft":
        messages = [
            {"role": "system", "content": system_msg},
            {"role": "user", "content": user_msg},
        ]
    else:
        msg = f"style={style!r} is not a prompt style; use one of {PROMPT_STYLES}."
        raise ValueError(msg)
    if assistant_msg is not None:
        messages.append({"role": "assistant", "content": assistant_msg})
    return messages
