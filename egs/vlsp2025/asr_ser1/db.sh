# Where the corpora live. Environment variables win.
# The VLSP 2025 ASR-SER release is distributed to challenge participants; point SPEECHSER_VLSP2025 at it.
VLSP2025=${SPEECHSER_VLSP2025:-/data/vlsp2025_asr_ser}
