"""What a result is keyed by and how it is stored: hashing, keys, the content-addressed store, outputs, clean."""
