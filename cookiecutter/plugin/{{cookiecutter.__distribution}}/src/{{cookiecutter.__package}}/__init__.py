"""{{ cookiecutter.plugin_name.strip() }}: an exchange framework plugin ({{ cookiecutter.plugin_kind }})."""

__version__ = "0.1.0"
