"""``python -m gmmspeech``: the same as the ``gmmspeech`` command."""

from .cli.main import entry_point

if __name__ == "__main__":  # pragma: no cover
    entry_point()
