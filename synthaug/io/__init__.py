"""Reading, converting and validating data on disk. Knows nothing of models."""
