# speechser: the commands the README gives.
VENV ?= .venv
PY := $(VENV)/bin/python
SHELL := /bin/bash

.PHONY: install install-browser test test-fast demo bench bench-extras lint check-env

install:
	./tools/install.sh

# Chromium from the OS packages, for the HTML report's browser test.
install-browser:
	./tools/install_browser.sh

check-env: install
	$(PY) tools/check_env.py

# The whole suite: unit, shell-tool and recipe integration tests. It installs no system package: without a
# Chromium the HTML report's browser test is skipped with the reason (make install-browser installs one).
test: install
	$(VENV)/bin/pytest -q test/unit test/shell test/integration

test-fast: install
	$(VENV)/bin/pytest -q test/unit test/shell

# The main job on a real corpus: Emo-DB, leave-one-speaker-out, all 10 folds.
demo: install
	cd egs/emodb/ser1 && ./run.sh

# The benchmark's optional peer: ESPnet's Conformer encoder, without its own pins (they conflict with the
# project's torch); bench_conformer.py adds its row when it imports.
bench-extras: install
	$(VENV)/bin/pip install --no-deps espnet==202511

# Every figure of test/bench/RESULTS.md (about 25 minutes on 2 CPU cores).
bench: install bench-extras
	$(PY) test/bench/bench_fbank.py
	$(PY) test/bench/bench_asr.py
	$(PY) test/bench/bench_infer.py
	$(PY) test/bench/bench_sampler.py
	$(PY) test/bench/bench_knn.py
	$(PY) test/bench/bench_conformer.py
	$(PY) test/bench/bench_conformer.py --paper --steps 3
	$(PY) test/bench/bench_ctc_decode.py
	$(PY) test/bench/bench_whisper.py
	$(PY) test/bench/summarize.py

# Python: byte-compiles, ruff. Shell: bash -n, then ShellCheck (settings: .shellcheckrc) on every shell script:
# utils/, the templates, each recipe's own scripts; the recipes' links (stage script, utils/) are checked at their target.
lint: install
	$(PY) -m compileall -q speechser test tools
	$(VENV)/bin/ruff check --select F,E9 --line-length 120 speechser test tools egs
	bash -n utils/*.sh egs/*/*/*.sh egs/*/*/local/*.sh
	find utils/* egs/TEMPLATE egs/*/*/*.sh egs/*/*/local/*.sh -type f \( -path 'utils/*' -o -name '*.sh' \) \
	    | LC_ALL=C sort -u | xargs -d '\n' $(VENV)/bin/shellcheck --format gcc
