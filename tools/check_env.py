#!/usr/bin/env python3
"""Import every dependency of speechser and print its version (``--quiet``: only the exit status)."""

import importlib
import importlib.metadata
import sys

DISTRIBUTIONS = {"yaml": "PyYAML", "sklearn": "scikit-learn"}

MODULES = ["torch", "torchaudio", "numpy", "soundfile", "kaldiio", "jiwer", "sentencepiece", "transformers",
           "typeguard", "yaml", "tqdm", "matplotlib", "opensmile", "sklearn", "pytest", "speechser"]


def main() -> int:
    quiet = "--quiet" in sys.argv
    failed = 0
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
            version = getattr(mod, "__version__", None)
            if not isinstance(version, str):
                try:
                    version = importlib.metadata.version(DISTRIBUTIONS.get(name, name))
                except importlib.metadata.PackageNotFoundError:
                    version = "?"
            if not quiet:
                print(f"{name:14s} {version}")
        except Exception as err:  # noqa: BLE001 - report any import failure
            failed += 1
            if not quiet:
                print(f"{name:14s} MISSING ({err})")
    if not quiet:
        import torch

        print(f"{'cuda':14s} {torch.cuda.is_available()} ({torch.cuda.device_count()} device(s))")
        print(f"{'threads':14s} {torch.get_num_threads()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
