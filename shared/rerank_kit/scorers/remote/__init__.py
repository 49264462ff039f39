"""Remote rerank APIs: the shared base (keys, retries, clients), wire formats, batching, and each provider."""
