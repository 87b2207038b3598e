"""Re-score saved decodes with this checkout's scorers and compare with the scores stored beside them.

``python test/bench/rescore_decodes.py EGS OUT`` takes the runs listed in ``test/bench/RESULTS_refactor.md`` under
``EGS`` (written by any checkout): each SER decode is scored again by ``speechser-score-ser`` (UA/WA/F1
table and confusion matrix) and each ASR decode by :func:`speechser.metrics.asr.write_asr_scores` (WER/CER
tables, alignments) from its ``text`` and ``ref``; every file must equal what the run wrote. Exit 1 on any
difference.
"""
import sys
from pathlib import Path

from speechser.bin.score_ser import main as score_ser
from speechser.io.datadir import read_kv
from speechser.metrics.asr import write_asr_scores

egs, out = Path(sys.argv[1]), Path(sys.argv[2])
labels = egs / "emodb/ser1/data/all/emotions.txt"
bad = 0


def same(a: Path, b: Path, what: str) -> None:
    global bad
    ok = a.read_text() == b.read_text()
    bad += not ok
    print("same   " if ok else "DIFFERS", what)


for tag, dec, scores in (("tdnn2ep", "decode_test", "scores"), ("fusion2ep", "decode_test", "scores"),
                         ("tdnn2ep", "knn/test", "scores_knn")):
    exp = egs / f"emodb/ser1/exp/{tag}/loso"
    o = out / f"{tag}_{scores}"
    rc = score_ser(["--label-list", str(labels), "--out-dir", str(o), "--title", "rescore", "--command", "rescore",
                    "--results-md", str(out / "RESULTS.md"), "--tag", f"{tag}-{scores}", str(exp / "fold1" / dec)])
    bad += rc != 0
    for f in ("scores.tsv", "confusion.txt"):
        same(o / f, exp / scores / f, f"SER {tag}/{dec} {f}")
for d in sorted((egs / "an4/asr1/exp/short2ep").glob("decode_*")):
    o = out / "asr" / d.name
    o.mkdir(parents=True, exist_ok=True)
    write_asr_scores(read_kv(d / "ref", allow_empty_value=True), read_kv(d / "text", allow_empty_value=True), o)
    for f in ("result.wer.md", "result.cer.md", "alignment.txt"):
        same(o / f, d / f, f"ASR {d.name} {f}")
print("differences:", bad)
sys.exit(1 if bad else 0)
