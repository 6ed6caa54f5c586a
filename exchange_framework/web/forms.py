"""Reading posted forms into typed values, with messages that say what to fix."""

from __future__ import annotations

from starlette.datastructures import FormData

__all__ = ["Form", "FormError"]


class FormError(ValueError):
    """A form field is missing or wrong; the message names the field and says what to enter."""


class Form:
    """A posted form (already CSRF-checked by :meth:`~exchange_framework.web.Web.form`) with typed getters."""

    def __init__(self, data: FormData) -> None:
        self.data = data

    def text(self, name: str, *, label: str | None = None, required: bool = False, max_length: int = 200) -> str:
        """A stripped text field; empty counts as missing."""
        raw = self.data.get(name, "")
        value = raw.strip() if isinstance(raw, str) else ""
        what = label or name.replace("_", " ")
        if required and not value:
            raise FormError(f"Enter the {what}.")
        if len(value) > max_length:
            raise FormError(f"The {what} is at most {max_length} characters.")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], *, label: str | None = None, default: str = "") -> str:
        """One of ``allowed`` (``default`` when empty)."""
        value = self.text(name, label=label) or default
        if value not in allowed:
            raise FormError(f"Choose the {label or name.replace('_', ' ')} from: {', '.join(allowed)}.")
        return value

    def integer(self, name: str, *, label: str | None = None) -> int:
        """A positive whole number."""
        value = self.text(name, label=label, required=True)
        if not value.isascii() or not value.isdigit() or int(value) <= 0:
            raise FormError(f"The {label or name.replace('_', ' ')} must be a positive whole number.")
        return int(value)

    def all(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes), stripped, empty ones dropped."""
        return [v.strip() for v in self.data.getlist(name) if isinstance(v, str) and v.strip()]

    def checked(self, name: str) -> bool:
        """Whether a checkbox was ticked."""
        return name in self.data
