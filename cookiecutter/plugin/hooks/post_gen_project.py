"""Remove the files the chosen kind of plugin does not use (cookiecutter renders every file of the template)."""

from pathlib import Path

KIND = {{ cookiecutter.__kind | jsonify }}
PACKAGE = Path("src") / {{ cookiecutter.__package | jsonify }}

ONLY_FOR = {PACKAGE / "node.py": "chain_adapter"}  # the chain adapter's in-process development node

if __name__ == "__main__":
    for path, kind in ONLY_FOR.items():
        if kind != KIND:
            path.unlink()
