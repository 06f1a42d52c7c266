"""Tools: annotate clusters with Cell-o1, solve CellPuzzles."""

__all__: list[str] = []
