"""speechser: a recipe toolkit for joint speech recognition and speech emotion recognition."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``from speechser import Speech2TextEmotion`` (imported on first use: ``import speechser`` stays light)."""
    if name == "Speech2TextEmotion":
        from speechser.pack.api import Speech2TextEmotion

        return Speech2TextEmotion
    raise AttributeError(f"module 'speechser' has no attribute '{name}'")
