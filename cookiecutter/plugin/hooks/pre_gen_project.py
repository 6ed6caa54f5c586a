"""Check the answers before anything is generated: a bad answer stops generation with a message saying what to do."""

import re
import sys

PLUGIN_NAME = {{ cookiecutter.plugin_name | jsonify }}
SLUG = {{ cookiecutter.__slug | jsonify }}
KIND = {{ cookiecutter.__kind | jsonify }}
KINDS = ("generic", "chain_adapter", "kyc_provider", "sanctions_screener", "custody_signer", "event_subscriber")
MAX_NAME = 40  # the name appears in first lines of docstrings and in package names
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]*")
SLUG_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def problems() -> list[str]:
    """Return what is wrong with the answers, one sentence each."""
    found = []
    name = PLUGIN_NAME.strip()
    if not name:
        found.append("plugin_name is empty: give the plugin a name, such as 'my sanctions list'")
    elif len(name) > MAX_NAME:
        found.append(f"plugin_name {PLUGIN_NAME!r} is longer than {MAX_NAME} characters: choose a shorter name")
    elif not NAME_RE.fullmatch(name):
        found.append(
            f"plugin_name {PLUGIN_NAME!r} may contain only letters, digits, spaces, '-' and '_', "
            "and must start with a letter or digit"
        )
    elif not SLUG_RE.fullmatch(SLUG):
        found.append(f"plugin_name {PLUGIN_NAME!r} gives no usable package name: use letters and digits too")
    if KIND not in KINDS:
        found.append(f"plugin_kind {KIND!r} is not one of: {', '.join(KINDS)}")
    return found


if __name__ == "__main__":
    errors = problems()
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        print("Nothing was generated; run cookiecutter again with a different answer.", file=sys.stderr)
        sys.exit(1)
