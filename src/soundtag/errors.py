"""Errors that are the user's to fix: a bad setting, file, folder or model. Each message names what is wrong and,
where it can, what would work. The command line prints them as one line and exits 2; a library caller can catch
them all as ValueError. They live here, apart from the modules that raise them, so that the command line can name
them without importing torch."""


class AudioError(ValueError):
    """A file or array that cannot be used as audio; the message says which one and why."""

    def __init__(self, source: object, reason: str):
        self.source, self.reason = str(source), reason
        super().__init__(f"{self.source}: {reason}")


class CatalogError(ValueError):
    """A search or export the catalog cannot answer as asked; the message says why and what would work."""


class ConfigError(ValueError):
    """An unknown key, a value of the wrong type or out of range, or an unreadable config file."""


class DatasetError(ValueError):
    """A dataset folder or file list that is missing, incomplete or inconsistent; the message says what."""


class ModelError(ValueError):
    """A model folder whose files are unreadable or do not agree with each other; the message says which."""


class QAError(ValueError):
    """A rules file that cannot be read; the message names the file and line."""
