"""Cell type names: matching answers to candidates, merging proposals, the Cell Ontology.

An answer item names a candidate when the two are equal after
:func:`sc_cello1._answer.normalize_label` (case, whitespace, punctuation, a trailing
plural ``s``) or, with the optional ``ontology`` extra (``cellxgene-ontology-guide``,
which ships the Cell Ontology inside its wheel), when both are a label or an exact
synonym of the same Cell Ontology (CL) term. Nothing else counts: no string
similarity, no assignment. This is what makes a vote evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from sc_cello1._answer import normalize_label
from sc_cello1._logging import logger

#: The pip extra that brings the Cell Ontology.
ONTOLOGY_EXTRA = "pip install 'sc-cello1[ontology]'"


def ontology_available() -> bool:
    """Whether ``cellxgene-ontology-guide`` (the ``ontology`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("cellxgene_ontology_guide") is not None


@lru_cache(maxsize=1)
def ontology_index() -> tuple[dict[str, str], dict[str, str], str]:
    """Normalised CL labels and exact synonyms to term IDs, term labels, and the CL version.

    A normalised name that two terms share is left out (it names neither for sure).
    Loaded once per session from the data inside ``cellxgene-ontology-guide``.
    """
    try:
        from cellxgene_ontology_guide.ontology_parser import OntologyParser
    except ImportError as err:  # pragma: no cover - checked by the callers first
        err.add_note(f"Name matching through the Cell Ontology needs the extra: {ONTOLOGY_EXTRA}")
        raise
    parser = OntologyParser()
    label_to_id = parser.get_term_label_to_id_map("CL")
    every = sorted(set(label_to_id.values()))
    synonyms = parser.map_term_synonyms(every)
    labels = {term: parser.get_term_label(term) for term in every}
    # obsolete terms: their names name the replacement (``replaced_by``), or nothing
    target = {term: _current_term(parser, term) for term in every}
    ids = [t for t in every if target[t] == t]
    index: dict[str, str] = {}
    clashes: set[str] = set()

    def add(name: str, term: str) -> None:
        key = normalize_label(name)
        if not key or key in clashes:
            return
        if key in index and index[key] != term:
            clashes.add(key)
            del index[key]
            return
        index[key] = term

    # labels first: a label wins over another term's synonym of the same spelling
    for term in ids:
        add(labels[term], term)
    label_keys = dict(index)
    for term in ids:
        for syn in synonyms.get(term, []):
            key = normalize_label(syn)
            if key in label_keys:
                continue
            add(syn, term)
    for old in every:
        new = target[old]
        if new is None or new == old:
            continue
        for name in [labels[old].removeprefix("obsolete "), *synonyms.get(old, [])]:
            if normalize_label(name) not in index:
                add(name, new)
    version = ""
    try:
        version = str(parser.cxg_schema.supported_ontologies["CL"]["version"])
    except (AttributeError, KeyError, TypeError):
        pass
    return index, labels, version


def check_distinct_terms(candidates: Sequence[str] | None, ontology: bool) -> None:
    """Reject two candidates that name one Cell Ontology term (they would split its votes)."""
    if not ontology or candidates is None:
        return
    index, labels, _ = ontology_index()
    by_term: dict[str, list[str]] = {}
    for c in candidates:
        term = index.get(normalize_label(c))
        if term is not None:
            by_term.setdefault(term, []).append(c)
    clashes = {t: names for t, names in by_term.items() if len(names) > 1}
    if clashes:
        shown = "; ".join(
            f"{names} are all {t} ({labels.get(t, '')!r})" for t, names in clashes.items()
        )
        msg = (
            f"Candidates name the same Cell Ontology term: {shown}. Their votes would split "
            "and both would get the same ID; keep one name per cell type, or pass "
            "ontology=False to treat them as different types."
        )
        raise ValueError(msg)


def _current_term(parser: object, term: str) -> str | None:
    """Return the term itself, its ``replaced_by`` term when obsolete, or ``None``."""
    try:
        if not parser.is_term_deprecated(term):  # type: ignore[attr-defined]
            return term
        new = parser.get_term_replacement(term)  # type: ignore[attr-defined]
    except (KeyError, ValueError):
        return term
    if new and str(new).startswith("CL:") and not parser.is_term_deprecated(new):  # type: ignore[attr-defined]
        return str(new)
    return None


def check_ontology(ontology: bool | None) -> bool:
    """Resolve ``ontology=`` (``None``: use it when installed); raise if asked for and missing."""
    if ontology is None:
        return ontology_available()
    if not isinstance(ontology, bool):
        msg = f"`ontology` must be True, False or None (use it when installed), got {ontology!r}."
        raise TypeError(msg)
    if ontology and not ontology_available():
        msg = f"ontology=True needs the Cell Ontology package: {ONTOLOGY_EXTRA}."
        raise ImportError(msg)
    return ontology


@dataclass
class NameMatcher:
    """Match free-text cell type names to a fixed list of candidates.

    Parameters
    ----------
    candidates
        The candidate names, in the order whose indices :meth:`match` returns.
    ontology
        Also match through Cell Ontology labels and exact synonyms.
    """

    candidates: Sequence[str]
    ontology: bool = False
    _by_name: dict[str, int] = field(init=False, repr=False)
    _by_term: dict[str, int] = field(init=False, repr=False)
    terms: list[str | None] = field(init=False)

    def __post_init__(self) -> None:
        self._by_name = {}
        for i, c in enumerate(self.candidates):
            self._by_name.setdefault(normalize_label(c), i)
        self.terms = [self.term_of(c) for c in self.candidates]
        self._by_term = {}
        shared: dict[str, list[str]] = {}
        for i, term in enumerate(self.terms):
            if term is None:
                continue
            shared.setdefault(term, []).append(self.candidates[i])
            self._by_term.setdefault(term, i)
        for term, names in shared.items():
            if len(names) > 1:
                logger.warning(
                    "candidates %s are the same Cell Ontology term %s; answers naming that "
                    "term by another name count for %r",
                    names,
                    term,
                    names[0],
                )

    def term_of(self, name: str) -> str | None:
        """Return the CL term ID a name maps to (``None`` without the ontology or a match)."""
        if not self.ontology:
            return None
        index, _, _ = ontology_index()
        return index.get(normalize_label(name))

    def match(self, item: str) -> int | None:
        """Index of the candidate an answer item names, or ``None`` when it names none."""
        key = normalize_label(item)
        if not key:
            return None
        hit = self._by_name.get(key)
        if hit is not None or not self.ontology:
            return hit
        term = self.term_of(item)
        return None if term is None else self._by_term.get(term)

    @property
    def unmapped(self) -> list[str]:
        """Candidates that map to no Cell Ontology term (empty without the ontology)."""
        if not self.ontology:
            return []
        return [c for c, t in zip(self.candidates, self.terms, strict=True) if t is None]


def merge_names(names: Iterable[str], *, ontology: bool) -> list[tuple[str, str, list[str]]]:
    """Group free-text names that mean the same cell type.

    Names are grouped by their CL term (with the ontology, when they map to one), else
    by their normalised form. Each group is shown by its CL label when it has a term,
    else by its most frequent spelling (ties: the first seen).

    Returns
    -------
    ``[(key, display name, spellings in order of first appearance), ...]`` in order of
    first appearance; ``key`` is the CL ID or ``"name:" + normalised name``.
    """
    groups: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    if ontology:
        index, labels, _ = ontology_index()
    for name in names:
        norm = normalize_label(name)
        if not norm:
            continue
        key = index.get(norm) if ontology else None
        groups.setdefault(key or f"name:{norm}", []).append(name)
    out = []
    for key, spellings in groups.items():
        if key in labels:
            display = labels[key]
        else:
            counts: dict[str, int] = {}
            for s in spellings:
                counts[s] = counts.get(s, 0) + 1
            display = max(counts, key=lambda s: (counts[s], -spellings.index(s)))
        seen: list[str] = []
        for s in spellings:
            if s not in seen:
                seen.append(s)
        out.append((key, display, seen))
    return out
