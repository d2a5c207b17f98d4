"""Reading and writing user files: YAML with line numbers, the restricted per-record export."""
