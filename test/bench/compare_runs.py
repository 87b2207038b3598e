"""Compare two checkouts' runs of the same short recipes file by file: a refactoring must not change a result.

``python test/bench/compare_runs.py BEFORE/egs AFTER/egs`` compares, for the runs listed in
``test/bench/RESULTS_refactor.md`` (a 2-epoch Emo-DB LOSO fold with k-NN, a 2-epoch AN4 run with four decoders,
and a 2-epoch Emo-DB fold fused with that AN4 encoder): the per-epoch training losses and validation
metrics (``train_stats.tsv`` and the epoch lines of ``train.log``, without their times), the decodes
(posteriors, hypotheses, references, confidences), the k-NN search and the scores, and the members of
the packed archives (``packed/*.tar``, but their report ``RESULTS.md``; ``meta.json`` without the fields
that name the run: source, creation time). A run that BEFORE does not hold is left out (said); exit 1 on any other difference.
"""
import json
import re
import sys
from pathlib import Path

B, A = Path(sys.argv[1]), Path(sys.argv[2])
files = []
for tag in ("tdnn2ep", "fusion2ep"):
    e = f"emodb/ser1/exp/{tag}/loso"
    files += [f"{e}/fold1/train_stats.tsv", f"{e}/fold1/train.log", f"{e}/fold1/decode_test/posteriors.tsv",
              f"{e}/fold1/decode_test/hyp", f"{e}/fold1/decode_test/ref", f"{e}/fold1/decode_test/scores.json",
              f"{e}/scores/scores.tsv", f"{e}/scores/confusion.txt"]
files += ["emodb/ser1/exp/tdnn2ep/loso/fold1/knn/knn_params.json", "emodb/ser1/exp/tdnn2ep/loso/fold1/knn/knn_grid.tsv",
          "emodb/ser1/exp/tdnn2ep/loso/fold1/knn/test/posteriors.tsv", "emodb/ser1/exp/tdnn2ep/loso/scores_knn/scores.tsv",
          "emodb/ser1/exp/tdnn2ep/loso/fold1/knn/datastore/utt2label"]
a4 = "an4/asr1/exp/short2ep"
files += [f"{a4}/train_stats.tsv", f"{a4}/train.log"]
for dec in ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam"):
    for s in ("train_dev", "test"):
        files += [f"{a4}/decode_{dec}_{s}/{x}" for x in ("text", "ref", "confidence", "scores.json", "result.wer.md",
                                                         "result.cer.md")]



def clean(path: str, text: str) -> str:
    if path.endswith("train_stats.tsv"):
        return "\n".join("\t".join(line.split("\t")[:-1]) for line in text.splitlines())
    if path.endswith("train.log"):  # the epoch summaries and the per-batch loss lines, without their times
        return "\n".join(re.sub(r" \| [0-9.]+s$", "", line.split("INFO: ", 1)[1]) for line in text.splitlines()
                         if re.search(r"INFO: epoch \d+( \d+/\d+)?:", line))
    if path.endswith(".json"):
        d = json.loads(text)
        for k in ("checkpoint",):
            d.pop(k, None)
        return json.dumps(d, sort_keys=True, indent=1)
    return text


def archive_members(path: Path) -> dict:
    import tarfile

    with tarfile.open(path) as tar:
        out = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    out.pop("RESULTS.md", None)  # the recipe's report: dates and commands
    meta = json.loads(out.pop("meta.json"))
    for k in ("source", "created", "files"):  # where and when it was packed; "files": checksums, compared above
        meta.pop(k, None)
    out["meta.json"] = json.dumps(meta, sort_keys=True).encode()
    return out


bad = 0
for run in sorted({"/".join(f.split("/")[:4]) for f in files}):
    if not (B / run).is_dir():
        print(f"left out  {run} (not in {B})")
files = [f for f in files if (B / "/".join(f.split("/")[:4])).is_dir()]
for arc in sorted(B.glob("*/*/exp/*/**/packed/*.tar")):
    rel = arc.relative_to(B)
    if not (A / rel).is_file():
        print(f"MISSING {rel} after")
        bad += 1
        continue
    mb, ma = archive_members(arc), archive_members(A / rel)
    differ = sorted(k for k in set(mb) | set(ma) if mb.get(k) != ma.get(k))
    print(f"{'same    ' if not differ else 'DIFFERS '} {rel} ({len(mb)} members){': ' + ', '.join(differ) if differ else ''}")
    bad += bool(differ)
for f in files:
    b, a = B / f, A / f
    if not b.is_file() or not a.is_file():
        print(f"MISSING {f}: before {b.is_file()} after {a.is_file()}")
        bad += 1
        continue
    cb, ca = clean(f, b.read_text()), clean(f, a.read_text())
    if cb == ca:
        print(f"same     {f} ({len(cb.splitlines())} lines)")
    else:
        bad += 1
        print(f"DIFFERS  {f}")
        for lb, la in zip(cb.splitlines(), ca.splitlines()):
            if lb != la:
                print("   before:", lb[:150])
                print("   after: ", la[:150])
                break
print("differences:", bad)
sys.exit(1 if bad else 0)
