"""Kaldi-format data directories: reading, writing, validating, fixing, subsetting.

A data directory holds plain text files of ``key value`` lines. Keys are sorted
in the C locale (byte order; for UTF-8 text this equals Python's code-point
order of ``str``) and every per-utterance file has the same key set.

Files by what their keys are:

* per utterance: ``utt2spk``, ``text``, ``utt2emo``, ``utt2gender``, ... (see
  :data:`PER_UTT_FILES`), and ``wav.scp`` when there is no ``segments`` file;
* per recording: ``wav.scp`` when ``segments`` exists (``segments`` maps
  ``utt -> reco start end``);
* per speaker: ``spk2utt``, ``spk2gender``, ``cmvn.scp``.

The package, by job (every name is re-exported here, so ``from speechser.io.datadir import read_kv`` works):

* :mod:`.tables`: keys, reading and writing ``key value`` files, speaker maps, :class:`DataDirError`;
* :mod:`.validate`: :func:`validate_data_dir`, a list of named checks run in order (:data:`CHECKS`);
* :mod:`.edit`: fix, subset, copy and combine, and :func:`write_tables` (the one writer of a directory's
  tables, used by them and by audio formatting);
* :mod:`.scp`: splitting an ``scp`` list into job pieces, filtering one by keys.
"""


from speechser.io.datadir.tables import (
    PER_UTT_FILES,
    PER_SPK_FILES,
    KALDI_EXTRA_UTT_FILES,
    UTT_LIST_FILES,
    EMPTY_VALUE_OK,
    DataDirError,
    key_problem,
    check_key,
    MAX_KEY_FILENAME_BYTES,
    safe_key_filename,
    check_keys,
    extra_utt_files,
    check_not_nested,
    Entry,
    read_lines,
    read_entries,
    read_kv,
    write_kv,
    check_sorted,
    utt2spk_to_spk2utt,
    spk2utt_to_utt2spk,
    write_spk2utt,
    write_data_dir,
    read_spk2utt,
    present_files,
)

from speechser.io.datadir.validate import (
    check_spk_sorted,
    check_text_file,
    SEGMENT_END_TOLERANCE,
    recording_durations,
    check_segment_bounds,
    ValidationOptions,
    DirUnderCheck,
    check_utt2spk,
    check_text,
    check_utt_key_sets,
    check_spk2utt,
    check_spk_files,
    check_audio,
    check_feats,
    check_labels,
    CHECKS,
    validate_data_dir,
)

from speechser.io.datadir.edit import (
    fix_data_dir,
    LABEL_LISTS,
    write_tables,
    read_utt_lengths,
    subset_data_dir,
    copy_data_dir,
    combine_data,
)

from speechser.io.datadir.scp import (
    split_scp,
    filter_scp,
)

__all__ = [
    "PER_UTT_FILES",
    "PER_SPK_FILES",
    "KALDI_EXTRA_UTT_FILES",
    "UTT_LIST_FILES",
    "EMPTY_VALUE_OK",
    "DataDirError",
    "key_problem",
    "check_key",
    "MAX_KEY_FILENAME_BYTES",
    "safe_key_filename",
    "check_keys",
    "extra_utt_files",
    "check_not_nested",
    "Entry",
    "read_lines",
    "read_entries",
    "read_kv",
    "write_kv",
    "check_sorted",
    "utt2spk_to_spk2utt",
    "spk2utt_to_utt2spk",
    "write_spk2utt",
    "write_data_dir",
    "read_spk2utt",
    "present_files",
    "check_spk_sorted",
    "check_text_file",
    "SEGMENT_END_TOLERANCE",
    "recording_durations",
    "check_segment_bounds",
    "ValidationOptions",
    "DirUnderCheck",
    "check_utt2spk",
    "check_text",
    "check_utt_key_sets",
    "check_spk2utt",
    "check_spk_files",
    "check_audio",
    "check_feats",
    "check_labels",
    "CHECKS",
    "validate_data_dir",
    "fix_data_dir",
    "LABEL_LISTS",
    "write_tables",
    "read_utt_lengths",
    "subset_data_dir",
    "copy_data_dir",
    "combine_data",
    "split_scp",
    "filter_scp",
]
