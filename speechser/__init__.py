"""speechser: a recipe toolkit for joint speech recognition and speech emotion recognition."""

__version__ = "0.1.0"
