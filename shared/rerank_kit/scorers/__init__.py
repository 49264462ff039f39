"""One module per scoring backend; each imports its optional dependency lazily."""
