"""RESULTS.md sections: cross-validation reports of SER (per-fold and averaged scores, summed confusion) and
the WER/CER tables of ASR decodes (:func:`asr_report`)."""

from __future__ import annotations

import argparse
import datetime
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from speechser.data.labels import read_label_list
from speechser.io.atomic import write_text_atomic
from speechser.io.datadir import DataDirError, read_kv
from speechser.metrics.asr import TABLE_HEADER
from speechser.metrics.classification import (
    confusion_matrix,
    format_confusion,
    mean_and_sample_std,
    plot_confusion,
    scores_from_confusion,
)
from speechser.metrics.decode_dir import check_fresh, read_posteriors, read_scores_json, unique_dirs


#: The per-speaker table in a report stops after this many rows (``per_speaker.tsv`` has them all).
MAX_SPEAKER_ROWS = 50


@dataclass
class FoldResult:
    name: str
    n: int
    scores: Dict[str, float]
    cm: np.ndarray
    #: utterance -> (reference, hypothesis) label indices
    pairs: Dict[str, Tuple[int, int]] = field(default_factory=dict)


def score_decode_dir(decode_dir: Path | str, labels: Sequence[str]) -> FoldResult:
    """Score ``hyp`` against ``ref`` (``utt label`` files) of a decode directory; refused when its
    output is older than the checkpoint its ``scores.json`` records (see :func:`check_fresh`)."""

    d = Path(decode_dir)
    check_fresh(d, ("hyp", "scores.json"))
    ref, hyp = read_kv(d / "ref"), read_kv(d / "hyp")
    if set(ref) != set(hyp):
        missing = sorted(set(ref) ^ set(hyp))
        raise DataDirError(f"{d}: ref and hyp differ in utterances, first '{missing[0]}'")
    index = {lab: i for i, lab in enumerate(labels)}
    for name, table in (("ref", ref), ("hyp", hyp)):
        for utt, lab in table.items():
            if lab not in index:
                raise DataDirError(f"{d}/{name}: unknown label '{lab}' for utterance '{utt}'")
    keys = sorted(ref)
    cm = confusion_matrix([index[ref[k]] for k in keys], [index[hyp[k]] for k in keys], len(labels))
    return FoldResult(_fold_name(d), len(keys), scores_from_confusion(cm), cm,
                      {k: (index[ref[k]], index[hyp[k]]) for k in keys})


def minority_map(decode_dirs: Sequence[Path | str], labels: Sequence[str], majority: Sequence[str]
                 ) -> Tuple[List[float], float, List[str]]:
    """SAILER's minority-class mean average precision (paper 004, sec. 2.4) of scored decode directories: for
    each class not in ``majority`` that occurs in the references, the one-against-rest average precision of
    its posterior (``posteriors.tsv``), averaged; per directory and pooled over all of them. Returns the
    per-directory values, the pooled value and the minority classes."""
    from speechser.metrics.classification import average_precision

    unknown = [c for c in majority if c not in labels]
    if unknown:
        raise DataDirError(f"majority class '{unknown[0]}' is not in the label list ({' '.join(labels)})")
    minority = [c for c in labels if c not in majority]
    per_dir: List[float] = []
    all_post: List[np.ndarray] = []
    all_ref: List[str] = []
    for d in decode_dirs:
        path = Path(d) / "posteriors.tsv"
        if not path.is_file():
            raise DataDirError(f"{path}: no such file (the minority-class mAP ranks the posteriors; decode again)")
        cols, keys, post = read_posteriors(path)
        if list(cols) != list(labels):
            raise DataDirError(f"{path}: columns {' '.join(cols)} are not the label list's ({' '.join(labels)})")
        ref = read_kv(Path(d) / "ref")
        refs = [ref[k] for k in keys]
        aps = [average_precision(post[:, labels.index(c)], [r == c for r in refs]) for c in minority if c in refs]
        per_dir.append(float(np.mean(aps)) if aps else float("nan"))
        all_post.append(post)
        all_ref += refs
    post = np.concatenate(all_post)
    aps = [average_precision(post[:, labels.index(c)], [r == c for r in all_ref]) for c in minority if c in all_ref]
    return per_dir, float(np.mean(aps)) if aps else float("nan"), minority


def speaker_results(folds: Sequence[FoldResult], utt2spk: Mapping[str, str], num_labels: int,
                    source: str = "utt2spk") -> List[FoldResult]:
    """The test utterances of all folds regrouped by speaker (``utt2spk``), one result per speaker in
    sorted order; an utterance scored twice, or missing from ``utt2spk``, is a :class:`DataDirError`."""
    by_spk: Dict[str, Tuple[List[int], List[int]]] = {}
    seen: Dict[str, str] = {}
    for f in folds:
        for utt, (r, h) in f.pairs.items():
            if utt in seen:
                raise DataDirError(f"utterance '{utt}' is scored in both {seen[utt]} and {f.name}")
            seen[utt] = f.name
            if utt not in utt2spk:
                raise DataDirError(f"{source}: no speaker for utterance '{utt}' of {f.name}")
            refs, hyps = by_spk.setdefault(utt2spk[utt], ([], []))
            refs.append(r)
            hyps.append(h)
    out = []
    for spk in sorted(by_spk):
        refs, hyps = by_spk[spk]
        cm = confusion_matrix(refs, hyps, num_labels)
        out.append(FoldResult(spk, len(refs), scores_from_confusion(cm), cm))
    return out


def _fold_name(d: Path) -> str:
    """``exp/x/fold3/decode_test`` and ``exp/x/fold3/knn/test`` -> ``fold3``; otherwise the
    directory's own name (or its parent's for ``decode*`` directories)."""
    for part in (d, *d.parents):
        if part.name.startswith("fold"):
            return part.name
    return d.parent.name if d.name.startswith("decode") else d.name


def environment_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    import os

    cuda = "no"
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        cuda = f"yes, {count} x {torch.cuda.get_device_name(0)}"
    return (f"python {platform.python_version()}, torch {torch.__version__}, {platform.system()} "
            f"{platform.machine()}, {os.cpu_count()} CPU core(s) ({cpu}), CUDA {cuda}")


def cv_report(
    folds: List[FoldResult],
    labels: List[str],
    title: str,
    command: str,
    notes: str = "",
    speakers: Optional[Sequence[FoldResult]] = None,
    min_map: Optional[Tuple[List[float], float, List[str]]] = None,
) -> str:
    """A Markdown section: per-fold table, mean and sample std over folds (``n - 1``, see
    :func:`~speechser.metrics.classification.mean_and_sample_std`; ``n/a`` for one fold, and the
    caption under the table says which std it is), summed confusion matrix, and with ``speakers`` (see
    :func:`speaker_results`) a per-speaker table (UA there averages the classes a speaker has)."""
    lines = [f"## {title}", ""]
    lines.append(f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M %Z').strip()}")
    lines.append(f"- environment: {environment_line()}")
    lines.append(f"- command: `{command}`")
    if notes:
        lines.append(f"- {notes}")
    lines += ["", "| fold | utts | UA % | WA % | macro-F1 % |", "| --- | --- | --- | --- | --- |"]
    for f in folds:
        s = f.scores
        lines.append(f"| {f.name} | {f.n} | {100 * s['ua']:.2f} | {100 * s['wa']:.2f} | {100 * s['macro_f1']:.2f} |")
    stats = {m: mean_and_sample_std([f.scores[m] for f in folds]) for m in ("ua", "wa", "macro_f1")}
    for stat, i in (("mean", 0), ("std", 1)):
        vals = {m: "n/a" if np.isnan(v[i]) else f"{100 * v[i]:.2f}" for m, v in stats.items()}
        lines.append(f"| **{stat}** | {sum(f.n for f in folds)} | {vals['ua']} | {vals['wa']} | {vals['macro_f1']} |")
    lines += ["", f"**std** is the sample standard deviation over the {len(folds)} fold(s), n − 1 in its denominator."]
    total = sum(f.cm for f in folds)
    pooled = scores_from_confusion(total)
    lines += ["", f"Pooled over all test utterances: UA {100 * pooled['ua']:.2f} %, "
              f"WA {100 * pooled['wa']:.2f} %, macro-F1 {100 * pooled['macro_f1']:.2f} %.", ""]
    if min_map is not None:
        per_fold, pooled_map, minority = min_map
        mean, std = mean_and_sample_std([v for v in per_fold if not np.isnan(v)])
        lines += [f"Minority-class mAP ({', '.join(minority)}; SAILER's measure): {100 * mean:.2f} % mean over "
                  f"folds (std {'n/a' if np.isnan(std) else f'{100 * std:.2f}'}), {100 * pooled_map:.2f} % pooled.", ""]
    lines += [
              "Summed confusion matrix (rows: reference, columns: hypothesis):", "", "```",
              format_confusion(total, labels), "```", ""]
    if speakers:
        lines += ["Per speaker, pooled over the folds (UA averages over the classes the speaker has):", "",
                  "| speaker | utts | UA % | WA % |", "| --- | --- | --- | --- |"]
        lines += [f"| {r.name} | {r.n} | {100 * r.scores['ua']:.2f} | {100 * r.scores['wa']:.2f} |"
                  for r in speakers[:MAX_SPEAKER_ROWS]]
        if len(speakers) > MAX_SPEAKER_ROWS:
            lines.append(f"| ({len(speakers) - MAX_SPEAKER_ROWS} more speakers in per_speaker.tsv) | | | |")
        lines.append("")
    return "\n".join(lines)


def asr_report(decode_dirs: List[Path | str], title: str, command: str, notes: str = "",
               allow_missing: bool = False) -> str:
    """A Markdown section with the WER and CER tables of decode directories
    (each holding ``result.wer.md``, ``result.cer.md`` and ``scores.json``),
    one row per directory named ``<decode dir>``.

    A decode that did not score every utterance of its set (``scores.json``
    says ``n`` < ``n_ref``, records ``missing`` or ``skipped`` ones, or does
    not say) is refused, naming the directory, unless ``allow_missing``:
    then the note says how many were missing."""
    wer_rows, cer_rows = [], []
    for d in unique_dirs(decode_dirs):
        for name, rows in (("result.wer.md", wer_rows), ("result.cer.md", cer_rows)):
            if not (d / name).is_file():
                raise DataDirError(f"{d}/{name}: no such file (run decoding first)")
            row = (d / name).read_text().splitlines()[-1]
            rows.append(row.replace("| test |", f"| {d.parent.name}/{d.name} |", 1))
        meta = read_scores_json(d)
        check_fresh(d, ("result.wer.md", "result.cer.md", "scores.json"), meta)
        n, n_ref = meta.get("n"), meta.get("n_ref")
        lost = len(meta.get("skipped") or []) + int(meta.get("missing") or 0)
        if n_ref is None or n is None or n != n_ref or lost:
            what = (f"{n} of {n_ref} utterance(s) decoded, {lost} missing or skipped" if n_ref is not None
                    else "it does not record how many utterances its set has (decoded by an older speechser?)")
            if not allow_missing:
                raise DataDirError(f"{d}/scores.json: not every utterance of the set was scored: {what}; "
                                   "decode again, or pass --allow-missing to report it as it is")
            notes += f" {d.name}: {what}."
    lines = [f"## {title}", "", f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
             f"- environment: {environment_line()}", f"- command: `{command}`"]
    if notes.strip():
        lines.append(f"- {notes.strip()}")
    lines += ["", "### WER", "", TABLE_HEADER, *wer_rows, "", "### CER", "",
              TABLE_HEADER.replace("Wrd", "Chr"), *cer_rows, ""]
    return "\n".join(lines)


def replace_section(path: Path | str, tag: str, body: str, header: str) -> None:
    """Put ``body`` between ``<!-- begin TAG -->`` and ``<!-- end TAG -->`` in
    ``path`` (created with ``header`` if missing); other sections stay."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else header.rstrip() + "\n\n"
    block = f"<!-- begin {tag} -->\n{body.rstrip()}\n<!-- end {tag} -->\n"
    pattern = re.compile(rf"<!-- begin {re.escape(tag)} -->.*?<!-- end {re.escape(tag)} -->\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    write_text_atomic(path, text)


def add_report_options(p: argparse.ArgumentParser, title: str, tag: str, results_md_required: bool = False) -> None:
    """The options every scoring tool shares: the report's title, command and notes, and where it goes."""
    p.add_argument("--title", default=title)
    p.add_argument("--command", default="", help="the command that produced what is scored (for the report)")
    p.add_argument("--notes", default="", help="Markdown added to the report")
    p.add_argument("--train-command", default="", help="the command that trained the scored models (the recipe "
                   "keeps it in <exp>/logs/train.command); the report gives it, and the training time")
    p.add_argument("--results-md", required=results_md_required, help="RESULTS.md whose section --tag is (re)written")
    p.add_argument("--tag", default=tag, help="the RESULTS.md section (default: %(default)s)")
    p.add_argument("--header", default="# RESULTS", help="first line of a new RESULTS.md")


def training_seconds(exp_dirs: Sequence[Path | str]) -> Optional[Tuple[float, int]]:
    """The training time of experiments: the sum of the ``seconds`` column of each one's ``train_stats.tsv``
    (every epoch it trained, across resumed runs: the trainer keeps the rows in its checkpoint), and how many
    experiments had one; None when none has (closed-form models)."""
    total, n = 0.0, 0
    for d in dict.fromkeys(Path(e) for e in exp_dirs):
        stats = d / "train_stats.tsv"
        if not stats.is_file():
            continue
        rows = [ln.split("\t") for ln in stats.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not rows or "seconds" not in rows[0]:
            continue
        col = rows[0].index("seconds")
        total += sum(float(r[col]) for r in rows[1:] if len(r) > col and r[col])
        n += 1
    return (total, n) if n else None


def _experiment_of(decode_dir: Path) -> Optional[Path]:
    """The experiment a decode directory belongs to: the nearest folder above it with a ``config.yaml``
    (``fold1/decode_test`` -> ``fold1``; ``fold1/knn/test`` -> ``fold1``)."""
    for up in list(decode_dir.resolve().parents)[:3]:
        if (up / "config.yaml").is_file():
            return up
    return None


def with_training_record(report: str, decode_dirs: Sequence[Path | str], train_command: str) -> str:
    """``report`` with, after its ``- command:`` line, the training command (quoted, so that it pastes) and the
    training time of the experiments the decode directories belong to (:func:`_experiment_of`)."""
    lines = []
    if train_command:
        lines.append(f"- training command: `{train_command}`")
    exps = [e for e in (_experiment_of(Path(d)) for d in decode_dirs) if e is not None]
    seconds = training_seconds(exps)
    if seconds is not None:
        lines.append(f"- training time: {seconds[0]:.0f} s, every epoch of the {seconds[1]} experiment(s) "
                     "(train_stats.tsv; resumed runs included)")
    if not lines:
        return report
    out = report.split("\n")
    at = next((i + 1 for i, ln in enumerate(out) if ln.startswith("- command:")), len(out))
    return "\n".join(out[:at] + lines + out[at:])


def publish_report(report: str, args: argparse.Namespace) -> None:
    """Write ``report`` as section ``args.tag`` of ``args.results_md`` (when given), and print it."""
    if args.results_md:
        replace_section(args.results_md, args.tag, report, args.header)
    print(report)


def score_cv(
    decode_dirs: Sequence[Path | str],
    label_list: Path | str,
    out_dir: Path | str,
    utt2spk: Optional[Path | str] = None,
) -> tuple[List[FoldResult], List[str], List[FoldResult]]:
    """Score every fold, write ``scores.tsv``, ``confusion.txt`` and ``confusion.png`` into ``out_dir``; with
    ``utt2spk``, also the per-speaker results (returned third, written to ``per_speaker.tsv``).
    A directory given twice, or two directories with the same fold name, are refused (they would be
    counted twice, or give a ``scores.tsv`` with one fold twice)."""

    labels = read_label_list(label_list)
    folds = [score_decode_dir(d, labels) for d in unique_dirs(decode_dirs)]
    names: Dict[str, Path] = {}
    for d, r in zip(decode_dirs, folds):
        if r.name in names:
            raise DataDirError(f"decode directories '{names[r.name]}' and '{d}' are both fold '{r.name}'; "
                               "score each fold once")
        names[r.name] = Path(d)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "scores.tsv", "w") as f:
        f.write("fold\tn\tua\twa\tmacro_f1\n")
        for r in folds:
            f.write(f"{r.name}\t{r.n}\t{r.scores['ua']:.5f}\t{r.scores['wa']:.5f}\t{r.scores['macro_f1']:.5f}\n")
    total = sum(r.cm for r in folds)
    (out / "confusion.txt").write_text(format_confusion(total, labels) + "\n")
    plot_confusion(total, labels, out / "confusion.png", title="summed over folds")
    speakers: List[FoldResult] = []
    if utt2spk is not None:
        if not Path(utt2spk).is_file():
            raise DataDirError(f"{utt2spk}: no such file (--utt2spk: the speakers of the scored utterances)")
        speakers = speaker_results(folds, read_kv(utt2spk), len(labels), str(utt2spk))
        with open(out / "per_speaker.tsv", "w") as f:
            f.write("speaker\tn\tua\twa\tmacro_f1\n")
            for r in speakers:
                f.write(f"{r.name}\t{r.n}\t{r.scores['ua']:.5f}\t{r.scores['wa']:.5f}\t{r.scores['macro_f1']:.5f}\n")
    return folds, labels, speakers
