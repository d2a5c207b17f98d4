"""The release gate: policy files, the verdict, the metric catalogue, CI artifacts."""
