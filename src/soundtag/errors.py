"""Errors that are the user's to fix (a bad setting, file or folder). The command line prints them as one line and
exits 2; a library caller can catch them as ValueError."""


class ConfigError(ValueError):
    """An unknown key, a value of the wrong type or out of range, or an unreadable config file."""
