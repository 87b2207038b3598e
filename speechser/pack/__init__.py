"""Packed models and inference on any audio: the archive format (:mod:`.archive`), the front-end it records
(:mod:`.frontend`), a user's audio as a data directory (:mod:`.inputs`), packing and labelling an SER
model (:mod:`.packed_ser`), and the Python API (:mod:`.api`)."""
