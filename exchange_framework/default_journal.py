"""Built-in plugin: the ``file`` journal backend, an append-only local file with group commit.

Selected by ``[backends] journal = "file"`` (the default); the file lives at ``[journal] path``, relative to the
config file's directory. Disable this plugin by name to replace ``file`` with another backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exchange_framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.interfaces import JournalBackend
    from exchange_framework.sequencer.journal import Journal


class FileJournalBackend:
    """Opens a :class:`~exchange_framework.sequencer.file_journal.FileJournal` at the configured path."""

    name = "file"

    def open(self, config: ExchangeConfig) -> Journal:
        """Open (creating its directory if needed) the journal file named by ``[journal] path``."""
        # Imported here so that loading the plugin manager does not load the sequencer.
        from exchange_framework.sequencer.file_journal import FileJournal

        path = config.journal_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileJournal(path, fsync=config.journal.fsync)


@hookimpl(trylast=True)
def register_journal_backends() -> list[JournalBackend]:
    """Register the ``file`` journal backend."""
    return [FileJournalBackend()]
