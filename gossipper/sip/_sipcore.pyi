"""Types of the native header indexer (_sipcore.c); None means the Python version decides."""

def index_headers(
    data: bytes, start: int, end: int, /
) -> tuple[list[tuple[str, str]], dict[str, list[str]]] | None: ...
