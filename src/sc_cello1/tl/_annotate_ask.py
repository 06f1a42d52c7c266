"""How ``tl.annotate`` runs the model: the backend it builds, the settings it asks ``solve`` with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._verb_options import is_backend

if TYPE_CHECKING:
    from ._annotate_config import AnnotateConfig


def load_backend(model: Any, backend: str, backend_kwargs: Mapping[str, Any] | None) -> Any:
    """Return ``model`` when it is a backend, else the backend built for it (it loads)."""
    if is_backend(model):
        return model
    from sc_cello1.inference import get_backend

    return get_backend(model, backend, **dict(backend_kwargs or {}))


def solve_puzzles(puzzles: list[Any], runner: Any, config: AnnotateConfig) -> list[dict]:
    """Ask :func:`~sc_cello1.tl.solve` one round's puzzles, with annotate's settings."""
    from ._solve import run_solve
    from ._solve_config import SolveConfig

    solve_config = SolveConfig(
        model=runner,
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        style="eval",
        constrained=config.constrained,
        repair=True,
        # each puzzle has at most as many cells as candidates: its answer is a permutation
        one_to_one=True,
        answer_dir=config.answer_dir,
        batch_size=config.batch_size,
    )
    return run_solve(puzzles, solve_config)
