#!/usr/bin/env bash
# Kaldi's run.pl interface: run.pl [opts] JOB=1:N log/x.JOB.log cmd ... (local jobs, one log each).
# Implemented in speechser (console script speechser-run-pl); run with --help for usage.
exec "$(dirname "$0")/console.sh" speechser-run-pl "$@"
