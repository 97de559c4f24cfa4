"""Errors a user can act on: printed as one line, exit status 2."""


class UserError(Exception):
    """Bad input or configuration: the message names the file and field and says what to do."""


class BuildError(Exception):
    """An environment or lock could not be built; the job fails, the others go on."""


class StoreError(Exception):
    """The artifacts folder cannot be written (read-only, full disk): one line naming the path, exit status 1."""
