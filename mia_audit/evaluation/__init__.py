"""Steps 3–6 as one core: model outputs on the audit records (+ reference evidence) in, attack results out."""
