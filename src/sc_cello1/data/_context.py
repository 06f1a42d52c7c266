"""The donor context sentence, as the authors built it from CELLxGENE ``obs`` columns."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: The CELLxGENE ``obs`` columns the context sentence reads.
CONTEXT_FIELDS = ("sex", "development_stage", "self_reported_ethnicity", "tissue", "disease")

_MISSING = {"nan", "unknown", "none", "na", ""}


def is_missing(value: Any) -> bool:
    """Whether a context value counts as missing (None, NaN, 'unknown', 'NA', '')."""
    if value is None:
        return True
    try:
        import pandas as pd

        if pd.isna(value):
            return True
    except (TypeError, ValueError):
        pass
    return str(value).strip().lower() in _MISSING


def context_sentence(
    obs_row: Mapping[str, Any],
    *,
    context_fields: Sequence[str] | Mapping[str, str] = (),
    extra_fields: Sequence[str] | Mapping[str, str] | None = None,
) -> str:
    """Build the authors' donor context sentence for one cell.

    Starts with ``"The cell is from"`` and appends, each only when present:
    ``" a {sex}"``, ``" at the {development_stage}"``,
    ``" with {self_reported_ethnicity} background"``, ``", originating from the {tissue}"``
    and ``". The patient is healthy with no diagnosed disease."`` (disease ``normal``) or
    ``". The patient has been diagnosed with {disease}."``.

    Parameters
    ----------
    obs_row
        A row of ``adata.obs`` (a :class:`pandas.Series`) or a dict.
    context_fields
        Further ``obs`` columns to append as short sentences ``" {Column}: {value}."``
        (for example smoking status or treatment time point). A mapping gives the text
        to use instead of the column name (``{"smoker": "Smoking status"}``). The same
        word as in :func:`~sc_cello1.data.build_puzzles` and :func:`~sc_cello1.tl.annotate`.
    extra_fields
        Deprecated name of ``context_fields`` (warns; removed in the next release).

    Returns
    -------
    The sentence.

    Examples
    --------
    >>> context_sentence({"sex": "female", "development_stage": "65-year-old stage",
    ...     "self_reported_ethnicity": "European", "tissue": "lung",
    ...     "disease": "lung adenocarcinoma"})
    'The cell is from a female at the 65-year-old stage with European background, originating from the lung. The patient has been diagnosed with lung adenocarcinoma.'
    """

    def get(key: str) -> Any:
        try:
            value = obs_row[key]
        except (KeyError, IndexError):
            return None
        return None if is_missing(value) else value

    text = "The cell is from"
    if (sex := get("sex")) is not None:
        text += f" a {sex}"
    if (stage := get("development_stage")) is not None:
        text += f" at the {stage}"
    if (eth := get("self_reported_ethnicity")) is not None:
        text += f" with {eth} background"
    if (tissue := get("tissue")) is not None:
        text += f", originating from the {tissue}"
    if (disease := get("disease")) is not None:
        if str(disease).strip().lower() == "normal":
            text += ". The patient is healthy with no diagnosed disease."
        else:
            text += f". The patient has been diagnosed with {disease}."
    if extra_fields is not None:
        warnings.warn(
            "context_sentence(extra_fields=...) is renamed context_fields= and will be removed.",
            FutureWarning,
            stacklevel=2,
        )
        context_fields = extra_fields
    labels = (
        dict(context_fields)
        if isinstance(context_fields, Mapping)
        else {f: f.replace("_", " ").capitalize() for f in context_fields}
    )
    for column, label in labels.items():
        value = get(column)
        if value is None:
            continue
        if not text.endswith("."):
            text += "."
        text += f" {label}: {value}."
    return text


def puzzle_context(
    obs: pd.DataFrame,
    rows: Sequence[int],
    *,
    context: str | Callable[[pd.DataFrame], str] | None,
    context_fields: Sequence[str] | Mapping[str, str] = (),
    fallback: str | None = None,
) -> str:
    """Return the context sentence of one puzzle whose cells are the ``obs`` rows ``rows``.

    The one rule of :func:`~sc_cello1.data.build_puzzles` and
    :func:`~sc_cello1.tl.annotate`: ``context`` as a string is used as is; as a callable
    it gets the puzzle's ``obs`` rows in cell order (``build_puzzles`` hands its
    callable the first of them); ``None`` gives the authors' sentence from the first
    cell (:func:`context_sentence` with ``context_fields``), or ``fallback`` when one is
    given and there are no ``context_fields`` (``annotate`` passes its fallback when
    ``obs`` has no CELLxGENE column).

    Raises
    ------
    TypeError
        The callable returned something other than a string.
    ValueError
        The sentence is empty or has a line break (which would break the prompt layout).
    """
    if isinstance(context, str):
        return context
    if context is not None:
        text: Any = context(obs.iloc[list(rows)])
    elif fallback is not None and not context_fields:
        return fallback
    else:
        text = context_sentence(obs.iloc[rows[0]], context_fields=context_fields)
    first = obs.index[rows[0]]
    if not isinstance(text, str):
        msg = (
            f"the `context` callable returned a {type(text).__name__}, not a string (puzzle "
            f"of cell {first!r}); it must return one line of text (the donor sentence)."
        )
        raise TypeError(msg)
    if not text.strip() or "\n" in text or "\r" in text:
        what = "empty" if not text.strip() else f"more than one line: {text[:80]!r}"
        msg = (
            f"the context of the puzzle of cell {first!r} is {what}; it must be one line of "
            "non-empty text (the donor sentence)."
        )
        raise ValueError(msg)
    return text
