"""``scp`` lists: splitting one into job pieces, filtering one by a key list."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from speechser.io.datadir.tables import (
    DataDirError,
    Entry,
    read_entries,
    read_kv,
)



def split_scp(
    scp: Path | str,
    outputs: Sequence[Path | str],
    utt2spk: Optional[Path | str] = None,
) -> None:
    """Split an scp (any ``key value`` file) into ``len(outputs)`` contiguous
    pieces of near-equal line counts, keeping file order.

    With ``utt2spk``, all utterances of one speaker go to the same piece (as
    Kaldi's ``split_scp.pl --utt2spk``). An output left empty is an error: ask
    for fewer pieces.
    """
    entries = read_entries(scp, allow_empty_value=True)
    n = len(outputs)
    if n < 1:
        raise ValueError("need at least one output")
    groups: List[List[Entry]] = []
    if utt2spk is not None:
        u2s = read_kv(utt2spk)
        for e in entries:
            if e.key not in u2s:
                raise DataDirError(f"{scp}:{e.lineno}: utterance '{e.key}' not in {utt2spk}")
            if groups and u2s[groups[-1][-1].key] == u2s[e.key]:
                groups[-1].append(e)
            else:
                groups.append([e])
    else:
        groups = [[e] for e in entries]
    if len(groups) < n:
        raise DataDirError(f"{scp}: cannot split {len(groups)} group(s) into {n} non-empty pieces")
    total = sum(len(g) for g in groups)
    pieces: List[List[Entry]] = [[] for _ in range(n)]
    done = 0
    gi = 0
    for i in range(n):
        target = round(total * (i + 1) / n)
        remaining_pieces = n - i - 1
        while gi < len(groups) and (
            not pieces[i] or (done + len(groups[gi]) <= target and len(groups) - gi > remaining_pieces)
        ):
            pieces[i].extend(groups[gi])
            done += len(groups[gi])
            gi += 1
    pieces[-1].extend(e for g in groups[gi:] for e in g)
    for out, piece in zip(outputs, pieces):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            for e in piece:
                f.write(f"{e.key} {e.value}\n" if e.value else f"{e.key}\n")


def filter_scp(
    id_list: Path | str,
    scp: Path | str,
    field: int = 1,
    exclude: bool = False,
) -> Iterable[str]:
    """Yield the lines of ``scp`` whose ``field``-th field (1-based) is (or with
    ``exclude`` is not) the first field of a line of ``id_list``; order of ``scp``."""
    ids = set()
    with open(id_list, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids.add(line.split()[0])
    with open(scp, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if len(fields) < field:
                raise DataDirError(f"{scp}:{lineno}: fewer than {field} field(s)")
            if (fields[field - 1] in ids) != exclude:
                yield line.rstrip("\n")
