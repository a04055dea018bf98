class LabError(Exception):
    """A problem the user can fix (bad path, bad option, bad data).

    The CLI prints it as one line and exits with status 2; it never shows a traceback.
    """
