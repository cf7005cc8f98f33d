"""Error types whose messages are meant for the user, one line each."""


class InputError(ValueError):
    """Bad user input: the message names the file, the key and what was expected.

    The command line prints ``str(error)`` alone (no traceback) and exits with status 2.
    """

    def __init__(self, message: str, *, file=None, key=None):
        where = ", ".join(p for p in (f"{file}" if file else "", f"key '{key}'" if key else "") if p)
        text = f"{where}: {message}" if where else message
        # one line, whatever names or values the input held (a key may contain a line break)
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"))
        self.message = message
        self.file = file
        self.key = key


class SolverError(RuntimeError):
    """The solver could not converge even after all cutbacks; results up to the last
    converged increment have been written before this is raised."""
