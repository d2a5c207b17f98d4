"""The audit data floor: manifests read once, labels bound to the model, per-record signals derived once."""
