"""Recipes compose (ARCHITECTURE.md): the three templates, their setup.sh, the shared stage library
utils/stage_lib.sh, and no inline Python in any shell script.

The stage scripts run for real (bash) with stand-in console scripts that record their arguments, so
the tests check what each stage calls and where its outputs go, in well under a second each."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from test_hostile_recipes import ROOT, TEMPLATES, make_recipe, run

TEMPLATE_DIRS = {"asr1": "asr.sh", "ser1": "ser.sh", "asr_ser1": "asr_ser.sh"}
LIB = ROOT / "utils/stage_lib.sh"
# the steps the stage scripts share: only utils/stage_lib.sh runs these tools
SHARED_TOOLS = ("speechser-format-audio", "utils/make_fbank.sh", "speechser-make-tokens", "speechser-train-asr",
                "speechser-decode-asr", "speechser-score-asr", "speechser-filter-loop", "speechser-train-ser",
                "speechser-infer-ser", "speechser-knn-ser", "speechser-report-filter-rounds", "local/data.sh")
INLINE_PYTHON = re.compile(r"\bpython[0-9.]*\s+-[cm]?(\s|$)|\"\$\{?py\}?\"\s+-c\b|<<-?\s*['\"]?PY['\"]?\s*$", re.M)


def shell_scripts():
    """Every shell script of the project: utils/, the templates, the recipes and their local/ scripts."""
    found = set(ROOT.glob("utils/*")) | set(ROOT.glob("egs/*/*/*.sh")) | set(ROOT.glob("egs/*/*/local/*.sh"))
    return sorted(p for p in found if p.is_file() and p.read_bytes()[:2] in (b"#!", b"# "))


# --- every template folder is complete, without copies ---------------------------------------------------

@pytest.mark.parametrize("template", sorted(TEMPLATE_DIRS))
def test_template_folder_has_stage_script_setup_path_cmd_db_and_conf(template: str):
    t = ROOT / "egs/TEMPLATE" / template
    for name in ("setup.sh", TEMPLATE_DIRS[template]):
        assert (t / name).is_file() and (t / name).stat().st_mode & 0o111, name
    for name in ("path.sh", "cmd.sh", "db.sh"):
        assert (t / name).is_file(), name
        # one implementation, linked from each template
        assert (t / name).resolve() == (ROOT / "egs/TEMPLATE/common" / name).resolve(), name
    assert sorted((t / "conf").glob("*.yaml")), "no default conf/"
    for conf in (t / "conf").glob("*.yaml"):
        assert conf.resolve().is_file(), f"{conf}: broken link"


@pytest.mark.parametrize("template", ["ser1", "asr_ser1"])
def test_knn_grid_is_a_config_file(template: str):
    import yaml

    for recipe in (ROOT / "egs/TEMPLATE" / template, ROOT / {"ser1": "egs/emodb/ser1",
                                                              "asr_ser1": "egs/vlsp2025/asr_ser1"}[template]):
        grid = yaml.safe_load((recipe / "conf/knn.yaml").read_text())
        assert grid["betas"] == pytest.approx([i / 10 for i in range(11)])
        assert grid["ks"] == [4, 8, 16, 32] and grid["temperatures"] == [0.05, 0.1, 0.2, 0.5, 1.0]
        assert grid["backend"] == "torch"


@pytest.mark.parametrize("template", sorted(TEMPLATE_DIRS))
def test_setup_makes_a_working_recipe_skeleton(tmp_path: Path, template: str):
    stage_script = TEMPLATE_DIRS[template]
    rdir = tmp_path / "egs/mycorpus" / template
    setup = ROOT / "egs/TEMPLATE" / template / "setup.sh"
    proc = run([setup, rdir], cwd=tmp_path, check=True)
    assert "created" in proc.stdout
    assert (rdir / stage_script).is_symlink() and (rdir / stage_script).resolve() == ROOT / "egs/TEMPLATE" / \
        template / stage_script
    assert (rdir / "utils").is_symlink() and (rdir / "utils").resolve() == ROOT / "utils"
    for name in ("path.sh", "cmd.sh", "db.sh"):  # the recipe's own files, to edit
        assert (rdir / name).is_file() and not (rdir / name).is_symlink(), name
    # its db.sh reads the one shared list of corpora, then takes the recipe's own lines
    assert 'TEMPLATE/common/db.sh"' in (rdir / "db.sh").read_text()
    shared = run(["bash", "-c", ". ./db.sh && echo ${EMODB}"], cwd=rdir, check=True).stdout.strip()
    assert shared.endswith("/corpora/emodb") or shared == os.environ.get("SPEECHSER_EMODB"), shared
    confs = sorted(p.name for p in (ROOT / "egs/TEMPLATE" / template / "conf").iterdir())
    assert sorted(p.name for p in (rdir / "conf").iterdir()) == confs
    assert not any(p.is_symlink() for p in (rdir / "conf").iterdir())
    for name in ("run.sh", "local/data.sh"):
        assert (rdir / name).stat().st_mode & 0o111, name
        subprocess.run(["bash", "-n", str(rdir / name)], check=True)
    # run.sh reaches the stage script (its help), and stage 1 runs the skeleton's local/data.sh
    proc = run(["./run.sh", "--help"], cwd=rdir, check=True)
    assert f"\nUsage: ./{stage_script} " in proc.stdout, proc.stdout
    proc = run(["./run.sh", "--stage", "1", "--stop_stage", "1"], cwd=rdir)
    assert proc.returncode != 0 and "fill in the corpus-specific preparation" in proc.stderr
    # never over an existing recipe; no directory: the usage
    again = run([setup, rdir], cwd=tmp_path)
    assert again.returncode != 0 and "not overwriting" in again.stderr
    usage = run([setup], cwd=tmp_path)
    assert usage.returncode != 0 and f"{template}/setup.sh egs/<corpus>/<task>" in usage.stderr


# --- no inline Python; the steps live in one library --------------------------------------------------------

def test_no_shell_script_holds_inline_python():
    scripts = shell_scripts()
    assert len(scripts) >= 20
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in scripts
                 for m in [INLINE_PYTHON.search(p.read_text())] if m]
    assert not offenders, offenders


def test_inline_python_pattern_catches_the_forms():
    for text in ("python3 - a b <<'PY'\n", "x=$(python3 -c \"print(1)\")", "python -c 'import x'",
                 'exec "${py}" -c \'import sys\'', "cat <<PY\n"):
        assert INLINE_PYTHON.search(text), text
    for text in ("python3 local/prepare_an4.py data", "speechser-train-asr --config x"):
        assert not INLINE_PYTHON.search(text), text


def test_stage_scripts_call_the_shared_steps_not_copies():
    lib = LIB.read_text()
    for tool in SHARED_TOOLS:
        assert tool in lib, tool
    for name, path in TEMPLATES.items():
        text = re.sub(r"(^|\s)#.*$", "", path.read_text(), flags=re.M)  # code only, not the comments
        assert ". utils/stage_lib.sh" in text, name
        for tool in SHARED_TOOLS:
            assert tool not in text, f"{name}.sh runs {tool} itself instead of calling utils/stage_lib.sh"
    joint = TEMPLATES["asr_ser"].read_text()
    for step in ("prepare_data", "format_audio", "make_features", "make_tokens", "train_asr", "filter_loop",
                 "train_ser", "infer_ser", "knn_ser", "decode_asr", "score_asr", "report_filter_rounds"):
        assert re.search(rf"^\s+{step} ", joint, re.M), step
    # and defines none of the library's functions again
    lib_functions = set(re.findall(r"^([a-z_]+)\(\) *\{", lib, re.M))
    assert not lib_functions & set(re.findall(r"^([a-z_]+)\(\) *\{", joint, re.M))


# --- what the composed stages run (stand-in console scripts) ------------------------------------------------

# one line, one write: stages run jobs in parallel, and two writes per call could interleave with another job's
RECORD = 'line=$(printf "%q " "$(basename "$0")" "$@"); printf "%s\\n" "${line}" >> "${PWD}/calls.txt"\n'
OPT = 'opt() { local k=$1; shift; while [ $# -gt 0 ]; do [ "$1" = "$k" ] && { echo "$2"; return; }; shift; done; }\n'
FAKES = {
    "speechser-make-tokens": RECORD,
    "speechser-train-asr": RECORD + OPT + 'e=$(opt --exp-dir "$@"); mkdir -p "$e"; touch "$e/valid.acc.ave_5best.pt"\n',
    "speechser-filter-loop": RECORD + OPT + 'o=$(opt --out-dir "$@"); mkdir -p "$o/round1/asr"\n'
                             'printf "round\\tkept\\n0\\t3\\n1\\t2\\n" > "$o/rounds.tsv"\n'
                             'echo "$o/round1/asr $o/round1/asr/valid.acc.ave_5best.pt" > "$o/final_asr"\n',
    "speechser-train-ser": RECORD,
    "speechser-infer-ser": RECORD + OPT + 'o=$(opt --out-dir "$@"); mkdir -p "$o"; echo "u1 neu" > "$o/hyp"\n',
    "speechser-knn-ser": RECORD,
    # --list-decoders: the decoders of the model's branches (FAKE_DECODERS: a CTC-only model, say); not recorded
    "speechser-decode-asr": 'case " $* " in *" --list-decoders "*) echo "${FAKE_DECODERS:-ctc_greedy ctc_beam '
                            'rnnt_greedy rnnt_beam}"; exit 0 ;; esac\n' + RECORD,
    "speechser-score-challenge": RECORD,
    "speechser-score-asr": RECORD,
    "speechser-report-filter-rounds": RECORD,
    "speechser-pack": RECORD,
    # the trainer's averaged model, as speechser-model-path finds it (not recorded: it runs no step)
    "speechser-model-path": OPT + 'e=$(opt --exp-dir "$@"); n=$(opt --name "$@"); echo "$e/${n:-valid.acc.ave_3best.pt}"\n',
}


def calls(r: Path, tool: str) -> list:
    return [shlex.split(ln)[1:] for ln in (r / "calls.txt").read_text().splitlines() if ln.startswith(tool + " ")]


def opt(args: list, name: str):
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_asr_ser_stages_compose_with_exp_tag_layout_and_test_sets(tmp_path: Path):
    r = make_recipe(tmp_path, FAKES)
    (r / "conf").mkdir()
    (r / "conf/knn.yaml").write_text("ks: [4]\n")
    proc = run(["bash", "asr_ser.sh", "--stage", "4", "--test_sets", "test1 test2", "--asr_config", "conf/asr.yaml",
                "--ser_config", "conf/ser.yaml", "--bestrq_config", "conf/bestrq.yaml", "--knn_backend", "faiss",
                "--knn_args", "--ks [4,8]"], cwd=r)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in range(4, 13):
        assert f"Stage {stage}:" in proc.stdout, stage
    (pack,) = calls(r, "speechser-pack")  # stage 12: the final ASR model and the SER model, one archive
    assert opt(pack, "--task") == ["asr_ser"] and opt(pack, "--exp-dir") == ["exp/ser"]
    assert opt(pack, "--asr-exp-dir") == ["exp/asr_char/filter/round1/asr"]
    assert opt(pack, "--asr-checkpoint") == ["exp/asr_char/filter/round1/asr/valid.acc.ave_5best.pt"]
    assert opt(pack, "--out") == ["exp/ser/packed/joint.tar"]
    bestrq, asr = [opt(c, "--exp-dir") for c in calls(r, "speechser-train-asr")]
    assert bestrq == ["exp/bestrq"] and asr == ["exp/asr_char"]
    asr_call = calls(r, "speechser-train-asr")[1]
    # the models later stages start from are the ones training wrote (speechser-model-path), not fixed names
    assert "[exp/bestrq/valid.acc.ave_3best.pt:encoder.]" in asr_call
    assert opt(asr_call, "--data.token_list") == ["data/token_list/char/tokens.txt"]
    (loop,) = calls(r, "speechser-filter-loop")
    assert opt(loop, "--out-dir") == ["exp/asr_char/filter"]
    assert opt(loop, "--checkpoint") == ["exp/asr_char/valid.acc.ave_3best.pt"]
    assert opt(loop, "--test-dir") == ["dump/fbank/test1", "dump/fbank/test2"]
    (ser,) = calls(r, "speechser-train-ser")
    assert opt(ser, "--exp-dir") == ["exp/ser"] and opt(ser, "--model.conf.asr_exp_dir") == ["exp/asr_char/filter/round1/asr"]
    assert [opt(c, "--out-dir") for c in calls(r, "speechser-infer-ser")] == [["exp/ser/decode_test1"],
                                                                            ["exp/ser/decode_test2"]]
    (knn,) = calls(r, "speechser-knn-ser")
    assert opt(knn, "--config") == ["conf/knn.yaml"] and opt(knn, "--backend") == ["faiss"]
    assert knn[-2:] == ["--ks", "[4,8]"]  # the overrides come last
    assert opt(knn, "--test-dir") == ["dump/fbank/test1", "dump/fbank/test2"] and opt(knn, "--out-dir") == ["exp/ser/knn"]
    assert [opt(c, "--out-dir") for c in calls(r, "speechser-decode-asr")] == [
        ["exp/asr_char/filter/round1/asr/decode_ctc_greedy_test1"], ["exp/asr_char/filter/round1/asr/decode_ctc_greedy_test2"]]
    tags = [opt(c, "--tag")[0] for c in calls(r, "speechser-score-challenge")]
    assert tags == ["challenge-ser-test1", "challenge-ser+knn-test1", "challenge-ser-test2", "challenge-ser+knn-test2"]
    (rounds,) = calls(r, "speechser-report-filter-rounds")
    assert rounds[0] == "exp/asr_char/filter/rounds.tsv" and opt(rounds, "--title") == ["data filter loop (conf/filter.yaml)"]
    (score,) = calls(r, "speechser-score-asr")
    assert opt(score, "--tag") == ["asr"] and score[-1] == "exp/asr_char/filter/round1/asr/decode_ctc_greedy_test2"


def test_ser_knn_uses_the_grid_config_and_fails_early_without_it(tmp_path: Path):
    r = make_recipe(tmp_path, FAKES)
    (r / "data/loso/fold1/test").mkdir(parents=True)
    args = ["bash", "ser.sh", "--stage", "6", "--stop_stage", "6", "--train_config", "conf/train.yaml", "--knn", "true"]
    proc = run(args, cwd=r)
    assert proc.returncode == 1 and "--knn_config conf/knn.yaml: no such file" in proc.stdout + proc.stderr
    assert not (r / "calls.txt").exists()
    (r / "conf").mkdir()
    (r / "conf/knn.yaml").write_text("ks: [4]\n")
    proc = run(args + ["--knn_args", "--temperatures [0.1]"], cwd=r)
    # the stand-in k-NN writes nothing, so the stage fails after the jobs, naming the fold
    assert "k-NN decoding failed for fold 1" in proc.stdout + proc.stderr
    (knn,) = calls(r, "speechser-knn-ser")
    assert opt(knn, "--config") == ["conf/knn.yaml"] and opt(knn, "--backend") == []
    assert opt(knn, "--out-dir") == ["exp/train/loso/fold1/knn"] and knn[-2:] == ["--temperatures", "[0.1]"]


def test_asr_filter_stage_writes_its_rounds_section_with_the_console_script(tmp_path: Path):
    r = make_recipe(tmp_path, FAKES)
    proc = run(["bash", "asr.sh", "--stage", "7", "--train_set", "tr", "--valid_set", "dv", "--test_sets", "t1",
                "--filter_config", "conf/filter.yaml", "--filter_args", "--max_rounds 1"], cwd=r)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (loop,) = calls(r, "speechser-filter-loop")
    assert opt(loop, "--asr-exp") == ["exp/train_char"] and loop[-2:] == ["--max_rounds", "1"]
    assert "--checkpoint_name" not in loop  # asr.sh leaves it to the filter config
    assert opt(loop, "--checkpoint") == ["exp/train_char/valid.acc.ave_3best.pt"]  # what training wrote
    (rounds,) = calls(r, "speechser-report-filter-rounds")
    assert rounds[0] == "exp/train_char/filter/rounds.tsv" and opt(rounds, "--header") == [f"# RESULTS: {tmp_path.name}/recipe"]
    assert opt(rounds, "--command")[0].startswith("asr.sh --stage 7") and opt(rounds, "--wall-time")[0].isdigit()
    (pack,) = calls(r, "speechser-pack")  # stage 10: the decoder is chosen on the valid set's decodes only
    assert opt(pack, "--task") == ["asr"] and opt(pack, "--out") == ["exp/train_char/packed/model.tar"]
    chosen = pack[pack.index("--choose-decoder-from") + 1:][:4]  # of the final model: the loop's last round
    final = (r / "exp/train_char/filter/final_asr").read_text().split()[0]
    assert chosen == [f"{final}/decode_{d}_dv" for d in ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam")]
    assert opt(pack, "--exp-dir") == [final]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_help_lists_every_option_with_its_default_and_meaning(tmp_path: Path, template: str):
    """`<stage script> --help` prints the usage line, then each option of the script's option block with its
    default and its comment (issue 16: asr.sh --help printed one line)."""
    r = make_recipe(tmp_path, {})
    proc = run(["bash", f"{template}.sh", "--help"], cwd=r)
    assert proc.returncode == 0 and re.search(r"^Usage: ", proc.stdout, re.M), proc.stdout + proc.stderr
    text = TEMPLATES[template].read_text()
    block = text[text.index("\nstage=") + 1:text.index("\nhelp_message=")]
    names = re.findall(r"^([a-z_][a-z0-9_]*)=", block, re.M)
    assert {"stage", "stop_stage", "nj"} <= set(names) and len(names) > 15
    listed = re.findall(r"^  --([a-z_0-9]+) ", proc.stdout, re.M)
    assert listed == names
    if template == "asr":
        assert re.search(r"^  --threads_per_job 2 +CPU threads of each training and decoding job", proc.stdout, re.M)
        assert re.search(r'^  --asr_model "" +a weights file of exp/<asr_tag>', proc.stdout, re.M)


def test_former_option_names_are_taken_with_a_warning(tmp_path: Path):
    """The stage scripts share one vocabulary (--threads_per_job; --asr_tag/--ser_tag, --asr_model/--ser_model,
    --ser_config/--ser_args): an option under its former name still works and says what it is now called."""
    r = make_recipe(tmp_path, FAKES)
    proc = run(["bash", "asr.sh", "--stage", "8", "--train_set", "tr", "--valid_set", "dv", "--test_sets", "t1",
                "--tag", "old", "--inference_model", "m.pt", "--threads", "3"], cwd=r)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for former, now in (("threads", "threads_per_job"), ("tag", "asr_tag"), ("inference_model", "asr_model")):
        assert f"--{former} is now --{now}" in out, former
    (pack,) = calls(r, "speechser-pack")
    assert opt(pack, "--exp-dir") == ["exp/old"] and opt(pack, "--checkpoint") == ["exp/old/m.pt"]
    (r / "calls.txt").unlink()
    (r / "data/loso/fold1").mkdir(parents=True)
    proc = run(["bash", "ser.sh", "--stage", "5", "--stop_stage", "5", "--train_config", "conf/x.yaml", "--tag", "t",
                "--train_args", "--seed 3"], cwd=r)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "--train_config is now --ser_config" in out and "--tag is now --ser_tag" in out
    (ser,) = calls(r, "speechser-train-ser")
    assert opt(ser, "--config") == ["conf/x.yaml"] and opt(ser, "--exp-dir") == ["exp/t/loso/fold1"]
    assert ser[-2:] == ["--seed", "3"]


def test_the_job_pool_runs_at_most_max_jobs_and_names_each_failed_log(tmp_path: Path):
    script = tmp_path / "pool.sh"
    script.write_text(f"""set -euo pipefail
log() {{ echo "$*"; }}
. {LIB}
job() {{  # how many are running when it starts: its start counted, the ends so far taken off
    echo + >> events; [ $(( $(grep -c + events) - $(grep -c -- - events || true) )) -le 2 ] || echo over >> over
    sleep 0.3; echo - >> events; return "$1"
}}
pool_start 2
pool_run a.log job 0
pool_run b.log job 1
pool_run c.log job 0
pool_run d.log job 2
if pool_wait; then echo all-ok; else echo "failed:${{pool_failed}}"; fi
""")
    proc = run(["bash", str(script)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("failed: b.log d.log")
    assert (tmp_path / "events").read_text().split().count("-") == 4 and not (tmp_path / "over").exists()


def test_asr_decodes_with_the_decoders_the_model_has(tmp_path: Path, monkeypatch):
    """Without --decoders, stages 8-10 use the decoders of the final model's branches (a CTC-only model: the
    CTC ones); an explicit --decoders is used as given."""
    r = make_recipe(tmp_path, FAKES)
    args = ["bash", "asr.sh", "--stage", "8", "--train_set", "tr", "--valid_set", "dv", "--test_sets", "t1"]
    monkeypatch.setenv("FAKE_DECODERS", "ctc_greedy ctc_beam")
    proc = run(args, cwd=r)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [opt(c, "--decoder")[0] for c in calls(r, "speechser-decode-asr")] == [
        "ctc_greedy", "ctc_greedy", "ctc_beam", "ctc_beam"]
    (pack,) = calls(r, "speechser-pack")
    assert pack[pack.index("--choose-decoder-from") + 1:][:2] == ["exp/train_char/decode_ctc_greedy_dv",
                                                                 "exp/train_char/decode_ctc_beam_dv"]
    assert "decode_rnnt" not in " ".join(pack)
    (r / "calls.txt").unlink()
    proc = run(args + ["--decoders", "rnnt_greedy"], cwd=r)
    assert proc.returncode == 0 and [opt(c, "--decoder")[0] for c in calls(r, "speechser-decode-asr")] == [
        "rnnt_greedy", "rnnt_greedy"]


def test_the_training_command_is_kept_quoted_so_that_it_pastes(tmp_path: Path):
    r = make_recipe(tmp_path, FAKES)
    (r / "data/loso/fold1").mkdir(parents=True)
    args = ["--stage", "5", "--stop_stage", "5", "--ser_config", "conf/my train.yaml", "--ser_args",
            "--seed 3 --optim.lr 1e-3"]
    proc = run(["bash", "ser.sh", *args], cwd=r)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = (r / "exp/my train/loso/logs/train.command").read_text().strip()
    assert shlex.split(recorded) == ["ser.sh", *args]  # pasted back, the same words
    (ser,) = calls(r, "speechser-train-ser")
    assert opt(ser, "--config") == ["conf/my train.yaml"] and ser[-4:] == ["--seed", "3", "--optim.lr", "1e-3"]
