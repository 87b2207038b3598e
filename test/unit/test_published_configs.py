"""Each published system's config carries the values its paper prints (../shared/papers), and the code's
defaults those configs rely on are the paper's: a change to one of them fails here, not silently in a
recipe's numbers. Documented departures are pinned too, so that changing one is a decision."""

from pathlib import Path
from typing import Any, Dict

from speechser.config import read_yaml

ROOT = Path(__file__).resolve().parents[2]


def conf(path: str) -> Dict[str, Any]:
    return read_yaml(ROOT / path)


def test_vlsp_2025_asr_and_ser_settings():
    """Paper 000: CTC + RNN-T with λ = 0.5, one LSTM layer of 640, a joint of 512; Adam, peak 0.004, 10 k
    warm-up steps, Noam schedule, at most 100 epochs; SER: the hybrid loss with α = 0.5 in eq. 3's form."""
    asr = conf("egs/vlsp2025/asr_ser1/conf/train_asr.yaml")
    m = asr["model"]["conf"]
    assert (m["rnnt_weight"], m["pred_hidden"], m["pred_layers"], m["joint_dim"]) == (0.5, 640, 1, 512)
    assert (asr["optim"]["name"], asr["optim"]["lr"]) == ("adam", 0.004)
    assert (asr["scheduler"]["name"], asr["scheduler"]["warmup_steps"]) == ("noam", 10000)
    assert asr["trainer"]["max_epochs"] == 100
    ser = conf("egs/vlsp2025/asr_ser1/conf/train_ser.yaml")["model"]["conf"]
    assert (ser["supcon_weight"], ser["supcon_variant"]) == (0.5, "paper")
    assert ser["ssl"]["name_or_path"] == "facebook/wav2vec2-base"  # "the public wav2vec-base checkpoint"


def test_cmgi_settings():
    """Paper 001: L = 0.1 L_ASR + 0.9 L_E (eq. 2), HuBERT large, BERT base over the transcript in training
    and the CTC hypothesis at test time, the CmGI interaction; "10e-5" read as 1e-5."""
    c = conf("egs/iemocap/ser1/conf/train_cmgi.yaml")
    m = c["model"]["conf"]
    assert m["asr_weight"] == 0.1 and m.get("ctc_reduction", "token") == "token"
    assert (m["train_text"], m["eval_text"], m["cmgi"]["interaction"]) == ("truth", "hypothesis", "cmgi")
    assert m["ssl"]["name_or_path"] == "facebook/hubert-large-ll60k"
    assert m["text"]["name_or_path"] == "bert-base-uncased"
    assert c["optim"]["lr"] == 1e-5


def test_metadata_enhanced_settings():
    """Paper 002: WavLM base with ARI, gender / speaker / style / ASR tasks with co-attention, stage 2 freezing
    the CNN and the first 4 of 12 layers, 100 epochs, batch 4, 1e-4 downstream and 1e-5 for the SSL model,
    TDSA at 0.8 / 1.0 / 1.2."""
    c = conf("egs/iemocap/ser1/conf/train_metadata.yaml")
    m = c["model"]["conf"]
    assert m["ssl"]["ari"] is True and m["ssl"]["name_or_path"] == "microsoft/wavlm-base"
    assert set(m["aux_weights"]) == {"utt2gender", "utt2spk", "utt2style", "text"} and m["co_attention"] is True
    assert m["stage2_freeze"] == 4 and m["stage1_epochs"] > 0
    assert (c["trainer"]["max_epochs"], c["data"]["max_batch_size"]) == (100, 4)
    assert c["optim"]["lr"] == 1e-4 and c["optim"]["groups"] == {"ssl.model.": {"lr": 1e-5}}
    assert c["data"]["augment"]["speed"]["factors"] == [0.8, 1.0, 1.2]


def test_pcq_settings():
    """Paper 003: MLCNN of PDC blocks with 16/32/48/64 channels, CSQ with 4 groups of dilations 7/5/2/1, 3-s
    segments, 40-ms Hamming windows, 800-point DFT, 200 bins, WavLM's last layer; AdamW at 1e-5, batch 16,
    early stop after 20 epochs without improvement."""
    from speechser.models.pcq_ser import PCQSERConfig

    c = conf("egs/iemocap/ser1/conf/train_pcq.yaml")
    m = c["model"]["conf"]
    assert (m["block"], m["channels"], m["dilations"], m["segment_seconds"]) == ("pdc", [16, 32, 48, 64],
                                                                                 [7, 5, 2, 1], 3.0)
    assert m["use_ssl"] and m["use_csq"] and m["ssl"]["layer"] == -1
    assert (c["optim"]["name"], c["optim"]["lr"], c["data"]["max_batch_size"]) == ("adamw", 1e-5, 16)
    assert c["trainer"]["patience"] == 20
    d = PCQSERConfig()
    assert (d.window_ms, d.n_fft, d.num_bins, d.sample_rate) == (40.0, 800, 200, 16000)


def test_sailer_settings():
    """Paper 004: Whisper large-v3's last layer frozen, three pointwise convolutions of 256, RoBERTa large's
    weighted layers, learning rate 0.0005 for 15 epochs, annotation dropout of 20 % of the majority classes'
    (neutral, happy, sad, angry) annotations, mixing with 0-2 s of silence or overlap, re-weighting,
    secondary emotions and attributes as extra tasks."""
    c = conf("egs/msp_podcast/ser1/conf/train_sailer.yaml")
    m, s = c["model"]["conf"], c["data"]["soft_labels"]
    assert m["ssl"] == {"name_or_path": "openai/whisper-large-v3", "layer": -1, "freeze_all": True}
    assert (m["conv_dim"], m["num_convs"]) == (256, 3)
    assert m["text"]["name_or_path"] == "roberta-large" and m["text"]["weighted_sum"] is True
    assert (c["optim"]["lr"], c["trainer"]["max_epochs"]) == (0.0005, 15)
    assert s["annotation_dropout"] == 0.2 and sorted(s["majority"]) == ["ang", "hap", "neu", "sad"]
    assert s["mix_max_seconds"] == 2.0 and c["data"]["class_weight_power"] == 1.0
    assert m["secondary_weight"] > 0 and m["attribute_weight"] > 0


def test_each_config_names_the_protocol_its_paper_used_and_recipes_read_it(capsys):
    """The recipe's ser.sh reads ``protocol:`` (speechser-config-value) unless ``--protocol`` is given."""
    import pytest

    from speechser.bin.config_value import main as config_value
    from speechser.config import ConfigValueError
    from speechser.tasks.ser import SERTrainConfig

    for path, protocol in [("egs/iemocap/ser1/conf/train_cmgi.yaml", "losess"),
                           ("egs/iemocap/ser1/conf/train_metadata.yaml", "losess"),
                           ("egs/iemocap/ser1/conf/train_pcq.yaml", "random10")]:
        assert config_value([str(ROOT / path), "protocol", "loso"]) == 0
        assert capsys.readouterr().out.strip() == protocol
    assert config_value([str(ROOT / "egs/emodb/ser1/conf/train_tdnn.yaml"), "protocol", "loso"]) == 0
    assert capsys.readouterr().out.strip() == "loso"  # none named: the default
    assert config_value([str(ROOT / "egs/emodb/ser1/conf/train_tdnn.yaml"), "model"]) == 1
    with pytest.raises(ConfigValueError, match="'random' is not a protocol"):
        SERTrainConfig(protocol="random")
