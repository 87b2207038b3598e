"""Issue 17: speechser-launch's command lines (one process, torchrun on a node, one torchrun per Slurm node)."""

import subprocess
import sys

import pytest

from speechser.launch import RDZV_PORT, LaunchError, first_host, launch_command

CMD = ["speechser-train-asr", "--config", "conf/train.yaml", "--exp-dir", "exp/a b"]


def test_one_process_runs_the_command_itself():
    assert launch_command(1, 1, CMD, env={}) == CMD
    assert launch_command(0, 1, CMD, env={}) == CMD  # CPU: the stage scripts add --trainer.device cpu


def test_several_processes_on_one_node_run_under_torchrun_standalone():
    got = launch_command(4, 1, CMD, env={})
    assert got[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert got[3:] == ["--standalone", "--nnodes", "1", "--nproc-per-node", "4", "--no-python", *CMD]


def test_several_nodes_run_one_torchrun_per_node_through_srun():
    env = {"SLURM_JOB_ID": "123456", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    got = launch_command(8, 2, CMD, env=env)
    assert got[:7] == ["srun", "--nodes", "2", "--ntasks", "2", "--ntasks-per-node", "1"]
    tr = got[got.index(sys.executable):]
    assert tr[3:] == ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"gpu07:{RDZV_PORT + 456}",
                      "--rdzv-id", "123456", "--nproc-per-node", "8", "--no-python", *CMD]
    assert f"gpu07:{29999}" in launch_command(1, 2, CMD, env=env, rdzv_port=29999)


def test_several_nodes_outside_slurm_or_in_an_allocation_of_another_size_are_refused():
    with pytest.raises(LaunchError, match="not one \\(no SLURM_JOB_ID\\): set train_cmd in cmd.sh to utils/slurm.pl"):
        launch_command(1, 2, CMD, env={})
    with pytest.raises(LaunchError, match="--num_nodes 4, but Slurm job 9 has 2 node"):
        launch_command(1, 4, CMD, env={"SLURM_JOB_ID": "9", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "a,b"})
    with pytest.raises(LaunchError, match="no command"):
        launch_command(1, 1, [], env={})


def test_the_first_host_of_a_slurm_node_list():
    assert first_host("node1,node2") == "node1"
    assert first_host("gpu[07-09,12],cpu1") == "gpu07"
    assert first_host("gpu[3,5]") == "gpu3"
    assert first_host("localhost") == "localhost"
    with pytest.raises(LaunchError):
        first_host("[1-2]")


def test_the_console_script_prints_what_it_runs_and_runs_it(tmp_path):
    out = subprocess.run([sys.executable, "-m", "speechser.launch", "--ngpu", "2", "--dry-run", "--", *CMD],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "speechser-launch: 2 process(es):" in out.stderr and "'exp/a b'" in out.stderr
    ran = subprocess.run([sys.executable, "-m", "speechser.launch", "--", "bash", "-c", f"echo ran > {tmp_path}/x"],
                         capture_output=True, text=True)
    assert ran.returncode == 0 and (tmp_path / "x").read_text() == "ran\n"
    bad = subprocess.run([sys.executable, "-m", "speechser.launch", "--num-nodes", "2", "--", "true"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "utils/slurm.pl" in bad.stderr
    nosep = subprocess.run([sys.executable, "-m", "speechser.launch", "true"], capture_output=True, text=True)
    assert nosep.returncode == 2 and "separate the command" in nosep.stderr
