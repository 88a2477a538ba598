"""One exception type for everything a user can get wrong.

The CLI turns a UserError into a single line on stderr and exit code 2, so every
module can raise it deep inside and never print tracebacks at people who merely
passed a bad file or flag.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message says what is wrong and what to do about it."""

    exit_code = 2


def one_line(msg: str) -> str:
    """Collapse a message onto one line, so error output stays greppable."""
    return " ".join(str(msg).split())
