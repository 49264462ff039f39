"""Framework-free retrieval pipeline steps around the reranker: fusion, max-passage scoring, MMR, two-stage."""
