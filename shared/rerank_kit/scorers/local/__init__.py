"""Local models: the cross-encoder scorer and its engine, and the embedding (bi-encoder) scorer."""
