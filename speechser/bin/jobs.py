"""Entry points ``speechser-run-pl`` and ``speechser-slurm-pl`` (``utils/run.pl``, ``utils/slurm.pl``)."""

from speechser.job_runner import main_run_pl, main_slurm_pl

__all__ = ["main_run_pl", "main_slurm_pl"]
