"""Shared fixtures: tiny synthetic data directories, tiny pretrained-model directories, and the real
corpora's locations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import pytest
import soundfile

from corpora import MARKERS, REQUIRE_VAR, corpora_required, lookup_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def root_logger_restored():
    """A command run in-process (``main([...])``) points the root logger at the test's captured stderr,
    which pytest closes after the test: put back the handlers and level the test found, so later tests
    do not log into a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def train_seed() -> int:
    """The seed of tests that train (``SPEECHSER_TEST_SEED``, default 0): such a test must pass under
    any seed, CPU and thread count, so it trains to a stated loss with a cap on steps and asserts with
    margin. Sweep it with e.g. ``SPEECHSER_TEST_SEED=3 OMP_NUM_THREADS=1 make test-fast``."""
    return int(os.environ.get("SPEECHSER_TEST_SEED", "0"))


def corpus_path(var: str, name: str) -> Optional[Path]:
    """The corpus ``name`` (its variable ``var``), or None where it is not found (see corpora)."""
    found = lookup_corpus(name, ROOT)
    assert found.var == var, (found.var, var)
    return found.path if found.found else None


_CORPUS_REASONS: Dict[str, str] = {}


def corpus_or_skip(name: str) -> Path:
    """The corpus, or a skip naming the variable and path; with SPEECHSER_REQUIRE_CORPORA=1 a failure."""
    found = lookup_corpus(name, ROOT)
    if found.found:
        return found.path
    if corpora_required():
        pytest.fail(f"{REQUIRE_VAR}=1 and {found.problem}", pytrace=False)
    _CORPUS_REASONS[name] = found.problem
    pytest.skip(found.problem)


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI (SPEECHSER_REQUIRE_CORPORA=1) a missing or invalid corpus stops the run before any test."""
    if corpora_required():
        problems = [f.problem for f in (lookup_corpus(n, ROOT) for n in MARKERS) if not f.found]
        if problems:
            raise pytest.UsageError(f"{REQUIRE_VAR}=1 but: " + "; ".join(problems))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    """One line per missing corpus: how many tests it skipped and why."""
    skipped = [str(getattr(r, "longrepr", "")) for r in terminalreporter.stats.get("skipped", [])]
    for name, reason in sorted(_CORPUS_REASONS.items()):
        n = sum(reason in s for s in skipped)
        terminalreporter.write_line(f"corpus {name}: {n} test(s) skipped: {_CORPUS_REASONS[name]} "
                                    f"(set {REQUIRE_VAR}=1 to make this an error)")


@pytest.fixture(scope="session")
def emodb() -> Path:
    return corpus_or_skip("emodb")


@pytest.fixture
def run_main():
    """``run_main("decode_asr", *args)``: a console script's ``main()`` (``speechser.bin.<module>``) in a fresh
    process, so that its stderr is whole and no logging state is shared with other tests."""
    import subprocess
    import sys

    def run(module: str, *args: object, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        code = f"import sys; from speechser.bin.{module} import main; sys.exit(main())"
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                              timeout=120, cwd=cwd)

    return run


def write_tone(path: Path, seconds: float, rate: int = 16000, freq: float = 220.0) -> None:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, subtype="PCM_16")


def write_lines(path: Path, table: Dict[str, str]) -> None:
    path.write_text("".join(f"{k} {v}\n" for k, v in table.items()), encoding="utf-8")


@pytest.fixture
def make_data_dir(tmp_path: Path):
    """Build a small sorted data directory with real WAV files; returns its path.

    ``make_data_dir(n_spk=2, n_utt=3, seconds=1.0, rate=16000)``; utterances
    ``spkA-u0`` ... with alternating emotions ``ang``/``neu``.
    """

    def build(n_spk: int = 2, n_utt: int = 3, seconds: float = 1.0, rate: int = 16000, name: str = "data") -> Path:
        d = tmp_path / name
        wav_dir = tmp_path / f"{name}_wav"
        d.mkdir()
        wav_dir.mkdir()
        wav, utt2spk, utt2emo, text = {}, {}, {}, {}
        for s in range(n_spk):
            spk = f"spk{chr(ord('A') + s)}"
            for u in range(n_utt):
                utt = f"{spk}-u{u}"
                path = wav_dir / f"{utt}.wav"
                write_tone(path, seconds, rate, freq=200.0 + 50 * u + 10 * s)
                wav[utt] = str(path)
                utt2spk[utt] = spk
                utt2emo[utt] = "ang" if u % 2 == 0 else "neu"
                text[utt] = f"hello {u}"
        write_lines(d / "wav.scp", wav)
        write_lines(d / "utt2spk", utt2spk)
        write_lines(d / "utt2emo", utt2emo)
        write_lines(d / "text", text)
        spk2utt: Dict[str, list] = {}
        for utt, spk in utt2spk.items():
            spk2utt.setdefault(spk, []).append(utt)
        write_lines(d / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
        (d / "emotions.txt").write_text("ang\nneu\n")
        return d

    return build


@pytest.fixture
def make_feats_dir(make_data_dir):
    """A data directory with fbank features (40 bins), utt2num_frames and per-speaker cmvn.scp."""

    def build(n_spk: int = 2, n_utt: int = 4, seconds: float = 0.6, name: str = "feats") -> Path:
        from speechser.features.extract import extract_fbank, write_cmvn
        from speechser.features.fbank import FbankOptions
        from speechser.io.datadir import read_kv

        d = make_data_dir(n_spk=n_spk, n_utt=n_utt, seconds=seconds, name=name)
        extract_fbank(d, d / "raw", opts=FbankOptions(num_mel_bins=40))
        write_lines(d / "feats.scp", read_kv(d / "raw.scp"))
        write_lines(d / "utt2num_frames", read_kv(d / "raw.num_frames"))
        write_cmvn(d, per_speaker=True)
        return d

    return build


@pytest.fixture(scope="session")
def an4() -> Path:
    return corpus_or_skip("an4")


@pytest.fixture(scope="session")
def whisper_base() -> Path:
    """The encoder of Whisper base (``SPEECHSER_WHISPER_BASE``, else ``shared/models/whisper-base-encoder``):
    real pretrained weights, used as a user's local model directory."""
    return corpus_or_skip("whisper_base")


def train_tiny_asr(d: Path, tmp_path: Path, seed: int, *overrides: str) -> Path:
    """Train a tiny ASR experiment (1 epoch, 2-layer Conformer, global CMVN, grapheme tokens in
    ``tmp_path/tokens.txt``) on the feature directory ``d`` into ``tmp_path/asr``; ``overrides``: further
    ``--key value`` words (``--model.conf.rnnt_weight 0``: CTC only). Returns the experiment directory."""
    from speechser.features.extract import write_cmvn
    from speechser.io.datadir import read_kv
    from speechser.tasks.asr import load_asr_config, train_asr
    from speechser.text.tokenizer import GraphemeTokenizer

    write_cmvn(d, per_speaker=False)
    tokens = GraphemeTokenizer.build_token_list(read_kv(d / "text").values())
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n")
    conf = load_asr_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.token_list", str(tmp_path / "tokens.txt"),
        "--data.cmvn_stats", str(d / "cmvn.ark"), "--data.max_frames", "2000",
        "--model.conf.encoder.d_model", "16", "--model.conf.encoder.num_layers", "2",
        "--model.conf.encoder.num_heads", "2", "--model.conf.encoder.ffn_dim", "32",
        "--model.conf.pred_hidden", "16", "--model.conf.pred_embed_dim", "8", "--model.conf.joint_dim", "16",
        "--trainer.max_epochs", "1", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
        "--seed", str(seed), *overrides,
    ])
    exp = tmp_path / "asr"
    train_asr(conf, exp)
    return exp


@pytest.fixture
def tiny_asr_exp(make_feats_dir, tmp_path: Path, train_seed):
    """A trained tiny ASR experiment (:func:`train_tiny_asr`) on a feature directory: ``(data_dir, exp_dir)``."""
    d = make_feats_dir()
    exp = train_tiny_asr(d, tmp_path, train_seed)
    assert (exp / "cmvn.ark").is_file()  # the experiment carries its normalization
    return d, exp


BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tiny_wavlm(out: Path, num_hidden_layers: int = 2, **overrides: Any) -> Path:
    """A tiny WavLM with random weights (hidden 16, 2 heads, a 2-layer CNN of stride 10), written with
    ``save_pretrained`` to ``out``: what a user's hub name or local directory is, loaded back through the
    same path. ``overrides``: other ``WavLMConfig`` keys (a slower CNN, say). Seed torch first."""
    import transformers as tf

    keys: Dict[str, Any] = dict(hidden_size=16, num_hidden_layers=num_hidden_layers, num_attention_heads=2,
                                intermediate_size=32, conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2),
                                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    keys.update(overrides)
    tf.AutoModel.from_config(tf.WavLMConfig(**keys)).save_pretrained(out)
    return out


def save_tiny_bert(out: Path, words: Sequence[str], num_hidden_layers: int = 1) -> Path:
    """A tiny BERT (hidden 12, 2 heads) with random weights and a word-piece tokenizer over BERT's special
    tokens and ``words``, both written to ``out`` with ``save_pretrained``. Seed torch first."""
    import transformers as tf

    vocab = [*BERT_SPECIAL, *words]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tf.BertTokenizerFast(vocab_file=str(out / "vocab.txt")).save_pretrained(out)
    conf = tf.BertConfig(vocab_size=len(vocab), hidden_size=12, num_hidden_layers=num_hidden_layers,
                         num_attention_heads=2, intermediate_size=24, max_position_embeddings=64)
    tf.AutoModel.from_config(conf).save_pretrained(out)
    return out
