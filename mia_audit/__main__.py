from mia_audit.cli import app

app()
