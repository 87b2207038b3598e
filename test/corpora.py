"""Where the shared research corpora are, checked: one rule for tests, benchmarks and CI.

A corpus is found through its environment variable (``SPEECHSER_EMODB``,
``SPEECHSER_AN4``) or, when the variable is unset, in ``shared/corpora/<name>``
beside the checkout; a shared pretrained model the same way (``SPEECHSER_WHISPER_BASE``,
else ``shared/models/whisper-base-encoder``). A variable that is set always wins: if it points at no
valid corpus, that is reported as such and never replaced by the default
(a silent fallback would run, or skip, something other than what was asked).
A folder is a valid corpus when it holds the entries its distribution ships
(:data:`MARKERS`).

``SPEECHSER_REQUIRE_CORPORA=1`` (set by CI) turns "not found" from a skip
into an error that names the variable and the path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

#: name -> (environment variable, entries the corpus folder must hold)
MARKERS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "emodb": ("SPEECHSER_EMODB", ("wav",)),
    "an4": ("SPEECHSER_AN4", ("etc/an4_train.transcription", "etc/an4_test.transcription", "wav")),
    "whisper_base": ("SPEECHSER_WHISPER_BASE", ("config.json", "model.safetensors", "preprocessor_config.json")),
}
#: Where each is found beside the checkout when its variable is unset (``shared/<this>``): the corpora under
#: ``corpora/``, the pretrained models (found by the same rule) under ``models/``.
DEFAULT_DIRS: Dict[str, str] = {"emodb": "corpora/emodb", "an4": "corpora/an4",
                                "whisper_base": "models/whisper-base-encoder"}
REQUIRE_VAR = "SPEECHSER_REQUIRE_CORPORA"


class CorpusNotFound(RuntimeError):
    """A required corpus is missing or invalid; the message names the variable and the path."""


@dataclass
class CorpusLookup:
    name: str
    var: str
    path: Path
    #: Empty when the corpus is there; else why not, naming the variable and the path.
    problem: str = ""

    @property
    def found(self) -> bool:
        return not self.problem


def corpora_required(environ: Optional[Dict[str, str]] = None) -> bool:
    """True when ``SPEECHSER_REQUIRE_CORPORA`` is set to 1 (or true/yes)."""
    env = os.environ if environ is None else environ
    return env.get(REQUIRE_VAR, "").strip().lower() in ("1", "true", "yes")


def lookup_corpus(name: str, checkout: Path, environ: Optional[Dict[str, str]] = None) -> CorpusLookup:
    """Find corpus ``name`` (a key of :data:`MARKERS`) for the checkout at ``checkout``."""
    env = os.environ if environ is None else environ
    var, markers = MARKERS[name]
    value = env.get(var)
    if value:
        path, origin = Path(value), f"{var}={value}"
    else:
        path, origin = checkout.parent / "shared" / DEFAULT_DIRS[name], f"{var} is unset and the default"
    if not path.is_dir():
        return CorpusLookup(name, var, path, f"{origin}: {path} is not a directory (set {var} to the corpus)")
    lacking = [m for m in markers if not (path / m).exists()]
    if lacking:
        what = "model" if DEFAULT_DIRS[name].startswith("models/") else "corpus"
        return CorpusLookup(name, var, path, f"{origin}: {path} has no '{lacking[0]}', so it is not the {name} "
                                             f"{what} as distributed (set {var} to the {what}'s folder)")
    return CorpusLookup(name, var, path)


def require_corpus(name: str, checkout: Path, environ: Optional[Dict[str, str]] = None) -> Path:
    """The corpus's path, or :class:`CorpusNotFound` with the reason."""
    found = lookup_corpus(name, checkout, environ)
    if not found.found:
        raise CorpusNotFound(found.problem)
    return found.path
