"""A file a user names (a fleet, a battery model, a datasheet table, a timeline): its text, or one clear error.

Each way such a file can fail to be read becomes the caller's own error type, worded alike everywhere: the file
first, then why, then what was expected ("x.toml: is a directory; give a TOML file").
"""

from __future__ import annotations

from pathlib import Path


def read_user_file(path: str | Path, error: type[Exception], expected: str, *, max_bytes: int | None = None,
                   source: str | None = None) -> str:
    """The UTF-8 text of ``path``, or ``error`` naming ``source`` (default: the path) and what went wrong.

    ``expected`` says what the file should be ("a TOML file"); ``max_bytes`` refuses a larger file unread
    beyond that many bytes, so a huge file named by mistake is never loaded whole.
    """
    shown = source or str(path)
    try:
        with Path(path).open("rb") as file:
            data = file.read() if max_bytes is None else file.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise error(f"{shown}: is a directory; give {expected}") from None
    except OSError as problem:
        raise error(f"{shown}: cannot be read ({problem.strerror or problem})") from None
    except ValueError as problem:  # a path Python cannot open at all (an embedded NUL byte)
        raise error(f"{shown}: cannot be read ({problem})") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"{shown}: larger than {max_bytes:,} bytes, the most {expected} may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{shown}: not UTF-8 text (byte {problem.start}); give {expected} in UTF-8") from None
