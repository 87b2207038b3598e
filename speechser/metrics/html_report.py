"""Self-contained HTML pages of scored experiments, every image embedded as a data URI: a page opens from
disk, offline, and can be mailed as one file.

- SER (``report.html`` beside ``report.md``): the results table, the confusion matrix, per-class and
  per-speaker recall, the training curves of every fold, and for k-NN decodes (``neighbours.tsv``) the
  nearest datastore neighbours of the most confidently misrecognized test utterances, with audio players;
- ASR (``report.html`` in the experiment): WER/CER per decode, the training curves, and the worst
  utterances of each decode with reference and hypothesis aligned.

Layout: ``<h1>`` title, a list of facts (date, machine, command, notes), then one ``<section>`` per part,
each with an ``id`` (``results``, ``confusion``, ``per-class``, ``per-speaker``, ``training``, ``neighbours``,
``worst``)
so that a test or a reader can find it.
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np

from speechser.metrics.classification import mean_and_sample_std, scores_from_confusion

if TYPE_CHECKING:
    from speechser.metrics.report import FoldResult

#: A k-NN report shows at most this many misrecognized test utterances, each with this many neighbours,
#: and plays at most ``AUDIO_SECONDS`` of each clip (16-bit, at most 16 kHz: a few MB per page).
NEIGHBOUR_EXAMPLES = 6
NEIGHBOURS_SHOWN = 3
AUDIO_SECONDS = 6.0

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
section{margin-top:2em}code{background:#f4f4f4;padding:1px 3px}"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    """A matplotlib figure as a ``data:`` URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _pyplot().close(fig)
    return _data_uri(buf.getvalue(), "image/png")


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows]
    return "\n".join(out + ["</table>"])


def audio_uri(source: str, start: float, end: float, key: str) -> str:
    """A clip of a ``wav.scp`` source (``start``..``end`` seconds, ``end`` -1 = the end; at most
    ``AUDIO_SECONDS``, resampled down to 16 kHz) as a ``data:audio/wav`` URI. Raises
    :class:`speechser.io.audio.AudioError` for unreadable audio."""
    import soundfile

    from speechser.io.audio import read_audio_source, resample

    samples, rate = read_audio_source(source, key)
    first = int(start * rate)
    last = len(samples) if end < 0 else int(end * rate)
    samples = samples[first:last][: int(AUDIO_SECONDS * rate)]
    if rate > 16000:
        samples, rate = resample(samples, rate, 16000), 16000
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return _data_uri(buf.getvalue(), "audio/wav")


def _player(key: str, audio: Dict[str, List[str]]) -> str:
    """An ``<audio>`` element for ``key`` (``audio``: rows of ``audio.tsv``), or why there is none."""
    from speechser.io.audio import AudioError

    if key not in audio:
        return "<i>no audio (no wav.scp)</i>"
    source, start, end = audio[key]
    try:
        uri = audio_uri(source, float(start), float(end), key)
    except AudioError as err:
        return f"<i>audio unreadable: {html.escape(str(err))}</i>"
    return f"<audio controls preload='metadata' title='{html.escape(key, quote=True)}' src='{uri}'></audio>"


def _tsv(path: Path) -> List[List[str]]:
    """A TSV's rows, its header first (blank lines left out)."""
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n").split("\t") for ln in f if ln.strip()]


def _neighbours_section(decode_dirs: Sequence[Path | str]) -> List[str]:
    """For k-NN decodes (``neighbours.tsv``, ``audio.tsv``, ``ref``, ``hyp``, ``posteriors.tsv``): the
    misrecognized test utterances with the highest posterior on their wrong class (spread over the decode
    directories), each with its nearest datastore neighbours and audio players; [] without k-NN decodes."""
    from speechser.metrics.decode_dir import read_posteriors
    from speechser.io.datadir import read_kv

    dirs = [Path(d) for d in decode_dirs if (Path(d) / "neighbours.tsv").is_file() and (Path(d) / "ref").is_file()]
    if not dirs:
        return []
    per_dir = max(1, NEIGHBOUR_EXAMPLES // len(dirs))
    parts = ["<section id='neighbours'><h2>k-NN: nearest datastore neighbours of misrecognized test utterances</h2>",
             f"<p>Per decode, the {per_dir} misrecognized utterance(s) with the highest posterior on the wrong class "
             f"(at most {NEIGHBOUR_EXAMPLES} in all), each with its {NEIGHBOURS_SHOWN} nearest neighbours in the "
             f"datastore (training and validation utterances; cosine similarity of the embeddings). Clips are cut "
             f"at {AUDIO_SECONDS:g} s.</p>"]
    shown = 0
    for d in dirs:
        if shown == NEIGHBOUR_EXAMPLES:
            break
        refs, hyps = read_kv(d / "ref"), read_kv(d / "hyp")
        names, keys, matrix = read_posteriors(d / "posteriors.tsv")
        at, col = {k: i for i, k in enumerate(keys)}, {c: j for j, c in enumerate(names)}
        post = {k: float(matrix[at[k], col[hyps[k]]]) for k in hyps}  # the posterior of the decoded class
        wrong = sorted((k for k in hyps if k in refs and hyps[k] != refs[k]), key=lambda k: (-post[k], k))
        neighbours: Dict[str, List[List[str]]] = {}
        for row in _tsv(d / "neighbours.tsv")[1:]:
            neighbours.setdefault(row[0], []).append(row)
        audio = {r[0]: r[1:4] for r in _tsv(d / "audio.tsv")[1:]} if (d / "audio.tsv").is_file() else {}
        for key in wrong[:per_dir]:
            if shown == NEIGHBOUR_EXAMPLES:
                break
            shown += 1
            parts.append(f"<h3>{html.escape(key)} ({html.escape(d.parent.parent.name + '/' + d.name)}): reference "
                         f"<b>{html.escape(refs[key])}</b>, decoded <b>{html.escape(hyps[key])}</b> "
                         f"(p = {post[key]:.2f})</h3><p>{_player(key, audio)}</p>")
            rows = [f"<tr><td>{html.escape(r[1])}</td><td>{html.escape(r[2])}</td><td>{html.escape(r[3])}</td>"
                    f"<td>{html.escape(r[4])}</td><td>{_player(r[2], audio)}</td></tr>"
                    for r in neighbours.get(key, [])[:NEIGHBOURS_SHOWN]]
            parts.append("<table><tr><th>rank</th><th>neighbour</th><th>label</th><th>similarity</th><th>audio</th>"
                         "</tr>" + "".join(rows) + "</table>")
    if not shown:
        parts.append("<p>No misrecognized test utterance.</p>")
    return parts + ["</section>"]


def read_train_stats(path: Path) -> Dict[str, List[float]]:
    """``train_stats.tsv`` (a header, one row per epoch) -> column -> values; an empty cell (a loss term an
    epoch did not have, such as the SER term in a staged model's first stage) is NaN."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {k: [float(r[k]) if r[k] not in ("", None) else float("nan") for r in rows] for k in (rows[0] if rows else {})}


def training_curves(stats: Dict[str, Dict[str, List[float]]], metric: str) -> Optional[str]:
    """One figure: training and validation loss (left) and the validation ``metric`` (right) per epoch,
    a line per fold; None without any statistics."""
    if not stats:
        return None
    fig, (ax1, ax2) = _pyplot().subplots(1, 2, figsize=(11, 3.6))
    for name, s in sorted(stats.items()):
        if "epoch" not in s:
            continue
        line = ax1.plot(s["epoch"], s.get("train_loss", []), label=f"{name} train")[0] if "train_loss" in s else None
        if "valid_loss" in s:
            ax1.plot(s["epoch"], s["valid_loss"], linestyle="--", color=line.get_color() if line else None)
        if f"valid_{metric}" in s:
            ax2.plot(s["epoch"], [100 * v for v in s[f"valid_{metric}"]], label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (solid: train, dashed: valid)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"valid {metric} %")
    if len(stats) <= 12:
        ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _png(fig)


def per_class_recall_plot(recall: np.ndarray, labels: List[str]) -> str:
    fig, ax = _pyplot().subplots(figsize=(1.2 + 0.7 * len(labels), 3.0))
    ax.bar(range(len(labels)), 100 * recall, color="#4a7ab5")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_ylabel("recall %")
    ax.set_ylim(0, 100)
    fig.tight_layout()
    return _png(fig)


def _page_head(title: str, command: str, notes: str) -> List[str]:
    """The page's start: title, date, machine, command, notes."""
    from speechser.metrics.report import environment_line

    environment = environment_line()
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>", "<ul>",
             f"<li>written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}</li>"]
    if environment:
        parts.append(f"<li>machine: {html.escape(environment)}</li>")
    if command:
        parts.append(f"<li>command: <code>{html.escape(command)}</code></li>")
    if notes:
        parts.append(f"<li>{html.escape(notes)}</li>")
    return parts + ["</ul>"]


def _training_section(curves: Dict[str, Dict[str, List[float]]], metric: str) -> List[str]:
    image = training_curves(curves, metric)
    return ["<section id='training'><h2>Training curves</h2>",
            f"<img alt='training curves' src='{image}'>" if image else
            "<p>No training statistics (a closed-form model, or a fusion of trained models).</p>", "</section>"]


def alignment_blocks(text: str) -> List[Dict[str, object]]:
    """``alignment.txt`` (blocks ``id: KEY`` / ``REF:`` / ``HYP:`` / marks) -> one dict per utterance with
    ``key``, ``lines`` (the block's text; empty for a correct utterance, which has no alignment), ``errors``
    (S + D + I marks) and ``words`` (reference words)."""
    out: List[Dict[str, object]] = []
    for block in text.strip().split("\n\n"):
        lines = block.strip("\n").split("\n")
        if not lines or not lines[0].startswith("id: "):
            continue
        ref = next((ln[5:] for ln in lines if ln.startswith("REF: ")), "")
        marks = lines[3] if len(lines) > 3 else ""
        out.append({"key": lines[0][4:], "lines": "\n".join(lines[1:]),
                    "errors": sum(marks.count(c) for c in "SDI"),
                    "words": len([w for w in ref.split() if set(w) != {"*"}])})
    return out


def asr_report_html(decode_dirs: Sequence[Path | str], title: str, command: str, notes: str,
                    out: Optional[Path | str] = None, worst: int = 10) -> Optional[Path]:
    """Write ``out`` (default: ``<experiment>/report.html`` when every decode directory lies in one
    experiment; else nothing is written and None returned) for ASR decode directories (``scores.json``,
    ``alignment.txt``): WER and CER per directory, the experiment's training curves (``train_stats.tsv``),
    the data filter loop's ``rounds.tsv`` (kept and removed per round and reason: ``<experiment>/filter/``,
    or the loop's folder for the ASR of one of its rounds), and per directory the ``worst`` utterances by
    word error rate with their reference and hypothesis aligned (ties: more errors first)."""
    import json

    exps = {Path(d).resolve().parent for d in decode_dirs}
    if out is None and len(exps) != 1:
        return None
    out = Path(out) if out is not None else exps.pop() / "report.html"
    exp = out.parent
    rounds = next((p for p in (exp / "filter/rounds.tsv", exp.parent.parent / "rounds.tsv") if p.is_file()), None)
    train_stats = exp / "train_stats.tsv"
    parts = _page_head(title, command, notes)
    rows = []
    for d in decode_dirs:
        sc = json.loads((Path(d) / "scores.json").read_text())
        rows.append([Path(d).name, sc.get("n", ""), sc.get("decoder", ""), f"{100 * sc['wer']:.2f}",
                     f"{100 * sc['cer']:.2f}"])
    parts += ["<section id='results'><h2>Results</h2>",
              _table(["decode", "utterances", "decoder", "WER %", "CER %"], rows), "</section>"]
    curves = {"model": read_train_stats(train_stats)} if train_stats.is_file() else {}
    parts += _training_section(curves, "acc")
    if rounds is not None:
        table = _tsv(rounds)
        parts += ["<section id='filter'><h2>Data filter loop: utterances kept and removed per round</h2>",
                  f"<p>From <code>{html.escape(str(rounds))}</code>.</p>", _table(table[0], table[1:]), "</section>"]
    parts.append(f"<section id='worst'><h2>The {worst} worst utterances of each decode</h2>")
    for d in decode_dirs:
        path = Path(d) / "alignment.txt"
        if not path.is_file():
            continue
        blocks = alignment_blocks(path.read_text(encoding="utf-8"))
        blocks.sort(key=lambda b: (-(int(b["errors"]) / max(int(b["words"]), 1)), -int(b["errors"]), str(b["key"])))
        parts.append(f"<h3>{html.escape(Path(d).name)}</h3>")
        for b in blocks[:worst]:
            if not b["lines"]:  # the scorer writes no alignment for a correct utterance
                parts.append(f"<p><b>{html.escape(str(b['key']))}</b>: no error</p>")
                continue
            wer = 100 * int(b["errors"]) / max(int(b["words"]), 1)
            parts.append(f"<p><b>{html.escape(str(b['key']))}</b>: {b['errors']} error(s) in {b['words']} word(s), "
                         f"WER {wer:.1f} %</p><pre>{html.escape(str(b['lines']))}</pre>")
    parts += ["</section>", "</body></html>\n"]
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def ser_report_html(folds: Sequence[FoldResult], labels: List[str], title: str, command: str, notes: str,
                    speakers: Sequence[FoldResult], out_dir: Path | str, decode_dirs: Sequence[Path | str],
                    metric: str = "ua") -> Path:
    """Write ``out_dir/report.html`` for SER folds (scored from ``decode_dirs``, in the same order), their
    ``confusion.png`` in ``out_dir`` and each fold's training curves: the ``train_stats.tsv`` of its
    experiment, the decode directory's parent (``fold<K>/decode_test`` -> ``fold<K>``) or, for k-NN
    decodes, grandparent (``fold<K>/knn/test`` -> ``fold<K>``), where there is one."""
    out_dir = Path(out_dir)
    curves: Dict[str, Dict[str, List[float]]] = {}
    for f, d in zip(folds, decode_dirs):
        found = next((p / "train_stats.tsv" for p in (Path(d).parent, Path(d).parent.parent)
                      if (p / "train_stats.tsv").is_file()), None)
        if found is not None:
            curves[f.name] = read_train_stats(found)
    parts = _page_head(title, command, notes)
    rows = [[f.name, f.n, *(f"{100 * f.scores[m]:.2f}" for m in ("ua", "wa", "macro_f1"))] for f in folds]
    stats = {m: mean_and_sample_std([f.scores[m] for f in folds]) for m in ("ua", "wa", "macro_f1")}
    for stat, i in (("mean", 0), ("sample std (n − 1)", 1)):
        rows.append([stat, sum(f.n for f in folds),
                     *("n/a" if np.isnan(stats[m][i]) else f"{100 * stats[m][i]:.2f}" for m in ("ua", "wa", "macro_f1"))])
    parts += ["<section id='results'><h2>Results per fold</h2>",
              _table(["fold", "utterances", "UA %", "WA %", "macro-F1 %"], rows), "</section>"]
    total = sum(f.cm for f in folds)
    pooled = scores_from_confusion(total)
    parts.append("<section id='confusion'><h2>Confusion matrix, summed over folds</h2>")
    parts.append(f"<p>Pooled: UA {100 * pooled['ua']:.2f} %, WA {100 * pooled['wa']:.2f} %, macro-F1 "
                 f"{100 * pooled['macro_f1']:.2f} %.</p>")
    confusion = out_dir / "confusion.png"
    if confusion.is_file():
        parts.append(f"<img alt='confusion matrix' src='{_data_uri(confusion.read_bytes(), 'image/png')}'>")
    parts.append("</section>")
    recall = np.diag(total) / np.maximum(total.sum(axis=1), 1)
    parts += ["<section id='per-class'><h2>Recall per class (pooled)</h2>",
              f"<img alt='recall per class' src='{per_class_recall_plot(recall, labels)}'>",
              _table(["class", "utterances", "recall %"],
                     [[c, int(total[i].sum()), f"{100 * recall[i]:.2f}"] for i, c in enumerate(labels)]),
              "</section>"]
    if speakers:
        parts += ["<section id='per-speaker'><h2>Per speaker (pooled over folds)</h2>",
                  _table(["speaker", "utterances", "UA %", "WA %"],
                         [[s.name, s.n, f"{100 * s.scores['ua']:.2f}", f"{100 * s.scores['wa']:.2f}"]
                          for s in speakers]), "</section>"]
    parts += _training_section(curves, metric)
    parts += _neighbours_section(decode_dirs)
    parts.append("</body></html>\n")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
