"""speechser-pack: one self-contained archive of a trained SER or ASR experiment (config, weights, front-end,
normalization statistics, labels or tokenizer, checksums), for speechser-infer and the Python API."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.pack.archive import PackError, PackUnsupported
    from speechser.pack.packed_asr import choose_decoder, pack_asr
    from speechser.pack.packed import experiment_task
    from speechser.pack.packed_fusion import pack_fusion
    from speechser.pack.packed_joint import pack_joint
    from speechser.pack.packed_ser import pack_ser
    from speechser.tasks.experiment_dir import record_inference_inputs_from_config
    from speechser.train.checkpoint import CheckpointError

    p = argparse.ArgumentParser(prog="speechser-pack", description=__doc__)
    p.add_argument("--exp-dir", required=True, help="a trained SER or ASR experiment (reads its config.yaml)")
    p.add_argument("--task", choices=("auto", "ser", "asr", "asr_ser", "ser_fusion"), default="auto", help="auto: "
                   "from the experiment's config (an SER model records its labels, an ASR model its vocabulary size; "
                   "a late-fusion fold has fusion.json); asr_ser: the SER experiment --exp-dir with the ASR experiment "
                   "--asr-exp-dir it is fused with; ser_fusion: a fused fold exp/<fusion tag>/<protocol>/fold<K>")
    p.add_argument("--asr-exp-dir", default="", help="asr_ser: the final ASR experiment")
    p.add_argument("--asr-checkpoint", default=None, help="asr_ser: its weights file (default: averaged, else best)")
    p.add_argument("--decoder", default="", help="ASR: the decoder the archive transcribes with (default: the one "
                   "with the lowest WER among --choose-decoder-from, else ctc_greedy)")
    p.add_argument("--choose-decoder-from", nargs="*", default=[], metavar="DECODE_DIR",
                   help="ASR: decode directories of the valid set (decode_<decoder>_<valid set>)")
    p.add_argument("--beam", type=int, default=10, help="ASR: beam of the beam-search decoders")
    p.add_argument("--out", required=True, help="the archive to write, e.g. exp/<tag>/loso/packed/fold1.tar")
    p.add_argument("--checkpoint", default=None, help="weights file in the experiment (default: its averaged "
                   "model, else its best)")
    p.add_argument("--corpus", default="", help="recorded in the archive's meta.json")
    p.add_argument("--results", default=None, help="a scores file to carry as RESULTS.md (e.g. the recipe's "
                   "scores/report.md)")
    p.add_argument("--knn-dir", default=None, help="SER: the experiment's k-NN decode directory (knn_params.json, "
                   "datastore/): the archive then decodes with k-NN interpolation as tuned there")
    p.add_argument("--record-inputs", action="store_true", help="first record in the experiment (inference/) what "
                   "packing needs of its training data (front-end, pooled statistics), as training does when it "
                   "starts: for an experiment trained by an older speechser; run from the recipe directory, with the "
                   "data/ and dump/ its config names")
    p.add_argument("--min-duration", type=float, default=0.5, help="the recipe's stage-2 minimum in seconds: "
                   "shorter audio is skipped at inference too (default: %(default)s)")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    try:
        task = experiment_task(a.exp_dir) if a.task == "auto" else a.task
        if a.record_inputs:
            record_inference_inputs_from_config(a.exp_dir)
        decoder, extra = a.decoder, {}
        if not decoder and a.choose_decoder_from:
            decoder, wer = choose_decoder(a.choose_decoder_from)
            extra = {"decoder_chosen_on": [str(d) for d in a.choose_decoder_from], "decoder_valid_wer": wer}
        if task == "ser_fusion":
            path = pack_fusion(a.exp_dir, a.out, a.corpus, a.results, a.min_duration)
        elif task == "ser":
            path = pack_ser(a.exp_dir, a.out, a.checkpoint, a.corpus, a.results, a.min_duration, a.knn_dir)
        elif task == "asr_ser":
            if not a.asr_exp_dir:
                raise ConfigError("--task asr_ser needs --asr-exp-dir (the ASR experiment the SER model fuses)")
            path = pack_joint(a.exp_dir, a.asr_exp_dir, a.out, a.checkpoint, a.asr_checkpoint, decoder or "ctc_greedy",
                              a.beam, a.corpus, a.results, a.min_duration, extra)
        else:
            path = pack_asr(a.exp_dir, a.out, a.checkpoint, decoder or "ctc_greedy", a.beam, a.corpus, a.results,
                            a.min_duration, extra)
    except PackUnsupported as err:
        print(f"speechser-pack: not supported: {err}", file=sys.stderr)
        return 3
    except (PackError, DataDirError, CheckpointError, ConfigError, OSError) as err:
        print(f"speechser-pack: error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
