"""The one exception type the CLI turns into a clean message and a non-zero exit."""


class NegrecError(Exception):
    """An error the user can fix; its message names the file, row or key and the fix."""
