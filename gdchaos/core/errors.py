"""Errors that gdchaos raises for bad input. Messages state the fix."""


class ConfigError(ValueError):
    """A configuration or argument that cannot run; the message says how to fix it."""


class PrecisionError(RuntimeError):
    """A computation whose requested precision is unavailable on this backend."""


class DatasetUnavailableError(RuntimeError):
    """A dataset that cannot be loaded here (e.g. not downloaded and no network)."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)
