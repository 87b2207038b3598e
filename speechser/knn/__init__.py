"""k-NN interpolated classification: datastores of utterance embeddings, exact search, interpolation."""
