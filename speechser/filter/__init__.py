"""Training-loop data filtering on ASR decodes (WER and CTC confidence)."""
