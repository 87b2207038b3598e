"""test/bench/summarize.py: the figures of every benchmark gathered into test/bench/RESULTS.md (issue 17)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import figures  # noqa: E402
import summarize  # noqa: E402


def record(bench: str, figs: list) -> dict:
    return {"bench": bench, "date": "2026-11-23", "environment": f"env of {bench}, 2 thread(s)",
            "command": f"python test/bench/bench_{bench}.py --threads 2", "detail": f"RESULTS_{bench}.md",
            "figures": figs}


def write(path: Path, rec) -> Path:
    path.write_text(json.dumps(rec) if not isinstance(rec, str) else rec)
    return path


def rows(text: str) -> list:
    """The table rows (not header nor separator) as lists of cells."""
    lines = text.splitlines()
    out = []
    for i, ln in enumerate(lines):
        header = i + 1 < len(lines) and lines[i + 1].startswith("| ---")
        if ln.startswith("| ") and not ln.startswith("| ---") and not header:
            out.append([c.strip() for c in ln.strip("|").split(" | ")])
    return out


def summary(text: str) -> str:
    """The "Summary" section of a RESULTS.md: from its heading to the next."""
    return "## Summary" + text.split("## Summary", 1)[1].split("\n## ", 1)[0]


@pytest.fixture()
def two_benches(tmp_path: Path) -> Path:
    d = tmp_path / "figures"
    d.mkdir()
    # written in the reverse of the summary's order: the summary sorts by bench name
    write(d / "zeta.json", record("zeta", [
        {"what": "decode", "unit": "RTF", "speechser": 0.02, "peers": {"other": 0.04, "absent": None},
         "higher_is_better": False, "note": "target | 0.05"},
        {"what": "fbank", "unit": "x real time", "speechser": 400.0, "peers": {}, "higher_is_better": True},
    ]))
    write(d / "alpha.json", record("alpha", [
        {"what": "training step", "unit": "s audio / s", "speechser": 30.0, "peers": {"torchaudio": 40.0},
         "higher_is_better": True, "note": "batch 8"},
    ]))
    return d


def test_tables_and_ratio_direction(two_benches: Path, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    text = summarize.summarize(two_benches, out)
    assert out.read_text() == text
    assert "make bench" in text.split("## ")[0]
    assert text.index("## alpha") < text.index("## zeta")
    alpha, zeta = text.split("## alpha")[1].split("## zeta")
    for name, part in (("alpha", alpha), ("zeta", zeta)):
        assert f"- environment: env of {name}, 2 thread(s)" in part
        assert "- date: 2026-11-23" in part
        assert f"- command: `python test/bench/bench_{name}.py --threads 2`" in part
        assert f"[RESULTS_{name}.md](RESULTS_{name}.md)" in part
    # higher is better: speechser / peer = 30 / 40 (< 1: the peer is faster)
    assert rows(alpha) == [["training step (s audio / s, higher is better)", "30.00", "torchaudio", "40.00", "0.75",
                            "batch 8"]]
    # lower is better: peer / speechser = 0.04 / 0.02 (> 1: speechser is faster); a null peer and no peer at all
    # both give a "not measured" row; a pipe in a note is escaped
    assert rows(zeta) == [
        ["decode (RTF, lower is better)", "0.02", "other", "0.04", "2.00", "target \\| 0.05"],
        ["decode (RTF, lower is better)", "0.02", "absent", "not measured", "—", "target \\| 0.05"],
        ["fbank (x real time, higher is better)", "400.0", "(none)", "not measured", "—", ""],
    ]


def test_summary_table(two_benches: Path, tmp_path: Path) -> None:
    """summarize.py writes the "Summary" table itself: one row per bench, by bench name, of its first figure (the
    headline) against every peer's value for it with the ratio, linking to the bench's section."""
    write(two_benches / "empty.json", record("empty", []))
    write(two_benches / "nopeer.json", record("nopeer", [
        {"what": "sampler", "unit": "%", "speechser": None, "peers": {}, "higher_is_better": True},
    ]))
    text = summarize.summarize(two_benches, tmp_path / "RESULTS.md")
    part = summary(text)
    # after the header's notice and ratio explanation, before every bench's section
    assert text.index("do not edit by hand") < text.index("## Summary") < text.index("## alpha")
    assert "| benchmark | workload | metric | result | section |" in part
    assert rows(part) == [
        ["training step (`bench_alpha.py --threads 2`)", "batch 8", "s audio / s, higher is better",
         "30.00; torchaudio 40.00 (ratio 0.75)", "[alpha](#alpha)"],
        ["empty (`bench_empty.py --threads 2`)", "—", "—", "(no figures recorded)", "[empty](#empty)"],
        ["sampler (`bench_nopeer.py --threads 2`)", "—", "%, higher is better", "not measured", "[nopeer](#nopeer)"],
        # the headline is the first figure (decode), not zeta's second (fbank); a null peer has no ratio, and a
        # pipe in the note is escaped
        ["decode (`bench_zeta.py --threads 2`)", "target \\| 0.05", "RTF, lower is better",
         "0.02; other 0.04 (ratio 2.00); absent not measured", "[zeta](#zeta)"],
    ]
    # each link points at a heading of the file
    for bench in ("alpha", "empty", "nopeer", "zeta"):
        assert f"\n## {bench}\n" in text
    # the figures' own tables are unchanged by the summary above them
    assert rows(text.split("## alpha")[1].split("## empty")[0]) == [
        ["training step (s audio / s, higher is better)", "30.00", "torchaudio", "40.00", "0.75", "batch 8"]]


def test_summary_anchor_follows_github() -> None:
    """A bench's link is GitHub's anchor of its heading, also where its name has capitals or spaces or repeats the
    anchor of a heading above it."""
    seen: dict = {}
    for heading in ("Benchmarks: speechser against its peers", "Summary"):
        summarize._anchor(heading, seen)
    assert summarize._anchor("conformer_paper", seen) == "conformer_paper"
    assert summarize._anchor("CTC decode (v2)", seen) == "ctc-decode-v2"
    assert summarize._anchor("summary", seen) == "summary-1"


def test_committed_results_are_generated(tmp_path: Path) -> None:
    """test/bench/RESULTS.md is exactly what summarize.py makes of the committed figures: no hand edits."""
    text = summarize.summarize(BENCH / "figures", tmp_path / "RESULTS.md")
    assert (BENCH / "RESULTS.md").read_text() == text
    assert len(rows(summary(text))) == len(list((BENCH / "figures").glob("*.json")))


def test_deterministic(two_benches: Path, tmp_path: Path) -> None:
    a = summarize.summarize(two_benches, tmp_path / "a.md")
    b = summarize.summarize(two_benches, tmp_path / "b.md")
    assert a == b


def test_ratio() -> None:
    assert summarize.ratio(30.0, 40.0, True) == pytest.approx(0.75)
    assert summarize.ratio(0.02, 0.04, False) == pytest.approx(2.0)
    assert summarize.ratio(None, 1.0, True) is None
    assert summarize.ratio(1.0, None, False) is None
    assert summarize.ratio(1.0, 0.0, True) is None


@pytest.mark.parametrize("content", [
    "{not json",
    "[]",
    json.dumps({"bench": "bad", "date": "2026-11-23"}),
    json.dumps(record("bad", [{"what": "x", "unit": "s", "speechser": "fast", "peers": {},
                               "higher_is_better": True}])),
    json.dumps(record("bad", [{"what": "x", "unit": "s", "speechser": 1.0, "peers": {"p": "slow"},
                               "higher_is_better": True}])),
    json.dumps(record("bad", [{"what": "x", "unit": "s", "speechser": 1.0, "peers": {}}])),
])
def test_malformed_file_is_named(two_benches: Path, tmp_path: Path, content: str) -> None:
    bad = write(two_benches / "broken.json", content)
    with pytest.raises(summarize.SummaryError, match="broken.json"):
        summarize.summarize(two_benches, tmp_path / "RESULTS.md")
    assert not (tmp_path / "RESULTS.md").exists()
    # the command line says it too, and fails
    assert summarize.main(["--figures-dir", str(two_benches), "--out", str(tmp_path / "R.md")]) == 1
    bad.unlink()


def test_cli_error_message_names_file(two_benches: Path, tmp_path: Path, capsys) -> None:
    write(two_benches / "broken.json", "{")
    assert summarize.main(["--figures-dir", str(two_benches), "--out", str(tmp_path / "R.md")]) == 1
    err = capsys.readouterr().err
    assert str(two_benches / "broken.json") in err and "malformed" in err


def test_no_figures_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(summarize.SummaryError, match="make bench"):
        summarize.summarize(tmp_path, tmp_path / "RESULTS.md")


def test_figures_round_trip(tmp_path: Path, monkeypatch) -> None:
    """What figures.py writes is what summarize.py reads."""
    d = tmp_path / "figures"
    script = str(BENCH / "bench_knn.py")
    path = figures.write_figures("knn", "python 3, 2 thread(s)", "/tmp/anywhere/RESULTS_knn.md", [
        figures.figure("search", "ms / utterance", 6.0, {"faiss": 3.0}, higher_is_better=False, note="agree"),
        figures.figure("build", "s", 1.5),
        figures.figure("search, no faiss", "ms / utterance", 2.0, {"faiss": None}, higher_is_better=False),
    ], script, d, argv=["--sizes", "2000", "--threads", "2"])
    assert path == d / "knn.json"
    rec = summarize.load_record(path)
    assert rec["bench"] == "knn" and rec["detail"] == "RESULTS_knn.md"
    assert rec["command"] == "python test/bench/bench_knn.py --sizes 2000 --threads 2"
    assert len(rec["date"]) == 10 and rec["date"][4] == "-"
    assert rec["figures"][1] == {"what": "build", "unit": "s", "speechser": 1.5, "peers": {}, "higher_is_better": True}
    text = summarize.summarize(d, tmp_path / "RESULTS.md")
    assert rows(text.split("## knn")[1]) == [
        ["search (ms / utterance, lower is better)", "6.00", "faiss", "3.00", "0.50", "agree"],
        ["build (s, higher is better)", "1.50", "(none)", "not measured", "—", ""],
        ["search, no faiss (ms / utterance, lower is better)", "2.00", "faiss", "not measured", "—", ""],
    ]
    # the default arguments are the script's own
    monkeypatch.setattr(sys, "argv", [script, "--queries", "10"])
    assert figures.command_line(script) == "python test/bench/bench_knn.py --queries 10"


def test_figures_refuses_non_finite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        figures.write_figures("x", "env", "RESULTS_x.md", [figures.figure("a", "s", float("inf"))], "x.py", tmp_path)
