"""FileJournal: round trips, reopening, torn-tail recovery and corruption detection on real files."""

from __future__ import annotations

import os
import random
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.sequencer import (
    CorruptJournalError,
    FileJournal,
    Journal,
    JournalError,
    JournalRecord,
    file_journal,
)
from exchange_framework.sequencer.file_journal import FILE_MAGIC, HEADER, INDEX_EVERY


def make_records(first_seq: int, payloads: list[bytes], ts_ns: int = 1_000) -> list[JournalRecord]:
    return [JournalRecord(first_seq + i, ts_ns + i, p) for i, p in enumerate(payloads)]


def encode(record: JournalRecord) -> bytes:
    """One record in the on-disk format, written independently of FileJournal."""
    body = struct.pack("<qq", record.seq, record.ts_ns) + record.payload
    return struct.pack("<II", len(record.payload), zlib.crc32(body)) + body


def write_journal(path: Path, records: list[JournalRecord]) -> list[int]:
    """Write ``records`` to ``path`` by hand; return the byte offset of each record."""
    offsets, data = [], bytearray(FILE_MAGIC)
    for record in records:
        offsets.append(len(data))
        data += encode(record)
    path.write_bytes(bytes(data))
    return offsets


def read_all(path: Path) -> list[JournalRecord]:
    with FileJournal(path) as journal:
        return list(journal.read())


PAYLOADS = [b"first", b"", b"x" * 300, b"\x00\xff" * 7, b"last record payload, forty bytes long..."]


def test_round_trip_and_on_disk_format(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    records = make_records(1, PAYLOADS)
    with FileJournal(path) as journal:
        assert isinstance(journal, Journal)
        assert journal.last_seq == 0
        assert list(journal.read()) == []
        journal.append(records[:2])
        journal.append(records[2:])
        assert journal.last_seq == 5
        assert journal.last_ts_ns == records[-1].ts_ns
        assert list(journal.read()) == records
    assert path.read_bytes() == FILE_MAGIC + b"".join(encode(r) for r in records)
    assert read_all(path) == records


def test_reopen_continues_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with FileJournal(path) as journal:
        journal.append(make_records(1, [b"a", b"b"]))
    with FileJournal(path) as journal:
        assert journal.last_seq == 2
        assert journal.recovered_tail_bytes == 0
        with pytest.raises(JournalError, match="does not follow 2"):
            journal.append(make_records(4, [b"gap"]))
        with pytest.raises(JournalError, match="does not follow 2"):
            journal.append(make_records(2, [b"again"]))
        journal.append(make_records(3, [b"c"]))
    assert [r.payload for r in read_all(path)] == [b"a", b"b", b"c"]


def test_empty_and_new_files_open_as_empty_journals(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.touch()
    with FileJournal(empty) as journal:
        assert journal.last_seq == 0
        assert list(journal.read()) == []
        assert journal.recovered_tail_bytes == 0
    assert empty.read_bytes() == FILE_MAGIC
    with FileJournal(tmp_path / "new") as journal:
        journal.append(make_records(1, [b"one"]))
    assert read_all(tmp_path / "new") == make_records(1, [b"one"])


def test_a_crash_while_creating_the_file_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    path.write_bytes(FILE_MAGIC[:3])
    with FileJournal(path) as journal:
        assert journal.recovered_tail_bytes == 3
        assert journal.last_seq == 0
    assert path.read_bytes() == FILE_MAGIC


def test_a_file_of_another_format_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not a journal")
    with pytest.raises(JournalError, match="not a journal file"):
        FileJournal(path)
    assert path.read_bytes() == b"hello, this is not a journal"


def test_only_one_writer_may_open_a_journal(tmp_path: Path) -> None:
    with FileJournal(tmp_path / "journal"), pytest.raises(JournalError, match="already open"):
        FileJournal(tmp_path / "journal")
    FileJournal(tmp_path / "journal").close()


def test_a_closed_journal_refuses_reads_and_appends(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "journal")
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.append(make_records(1, [b"a"]))
    with pytest.raises(JournalError, match="closed"):
        journal.read()


@pytest.mark.parametrize("reopen", [False, True], ids=["index-from-appends", "index-from-scan"])
def test_read_from_the_middle(tmp_path: Path, reopen: bool) -> None:
    path = tmp_path / "journal"
    count = 2 * INDEX_EVERY + 300
    records = make_records(1, [f"payload {n}".encode() * (n % 5) for n in range(1, count + 1)])
    journal = FileJournal(path, fsync=False)
    try:
        for start in range(0, count, 700):
            journal.append(records[start : start + 700])
        if reopen:
            journal.close()
            journal = FileJournal(path)
        for from_seq in (1, 2, 500, INDEX_EVERY, INDEX_EVERY + 1, INDEX_EVERY + 2, 2 * INDEX_EVERY + 1, count):
            assert list(journal.read(from_seq)) == records[from_seq - 1 :], from_seq
        assert list(journal.read(count + 1)) == []
        with pytest.raises(ValueError):
            journal.read(0)
    finally:
        journal.close()


def test_records_larger_than_the_read_chunk_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    rng = random.Random(7)
    records = make_records(1, [rng.randbytes(3 << 20), b"small", rng.randbytes(1 << 20), b"tail"])
    with FileJournal(path) as journal:
        journal.append(records)
    assert read_all(path) == records


def test_payload_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_journal, "MAX_PAYLOAD", 100)
    with FileJournal(tmp_path / "journal") as journal:
        with pytest.raises(JournalError, match="exceeds 100"):
            journal.append(make_records(1, [b"ok", b"x" * 101]))
        assert journal.last_seq == 0
        journal.append(make_records(1, [b"x" * 100]))


# -- torn tails ------------------------------------------------------------------------------------------------


def test_torn_tail_at_every_offset_inside_the_last_record(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    records = make_records(1, PAYLOADS)
    offsets = write_journal(path, records)
    original = path.read_bytes()
    last_start = offsets[-1]
    for cut in range(last_start, len(original)):
        path.write_bytes(original[:cut])
        with FileJournal(path) as journal:
            assert journal.recovered_tail_bytes == cut - last_start, cut
            assert journal.last_seq == 4
            assert list(journal.read()) == records[:4]
            assert path.stat().st_size == last_start
            journal.append(make_records(5, [b"rewritten"]))
        with FileJournal(path) as journal:
            assert journal.recovered_tail_bytes == 0
            assert list(journal.read()) == [*records[:4], *make_records(5, [b"rewritten"])]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x01",
        b"\xff" * 23,
        b"\x00" * 24,
        b"\x00" * 4096,  # what some file systems leave after a crash: a zero-filled tail
        random.Random(1).randbytes(100),
        random.Random(2).randbytes(5000),
        encode(JournalRecord(6, 0, b"not durable"))[:-1],
        struct.pack("<IIqq", 5, 0xDEADBEEF, 6, 0) + b"abcde",  # a whole record with a wrong checksum
    ],
    ids=["1-byte", "partial-header", "zero-header", "zero-page", "random-100", "random-5000", "partial", "bad-crc"],
)
def test_garbage_after_the_last_record_is_cut(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "journal"
    records = make_records(1, PAYLOADS)
    write_journal(path, records)
    clean_size = path.stat().st_size
    with path.open("ab") as f:
        f.write(garbage)
    with FileJournal(path) as journal:
        assert journal.recovered_tail_bytes == len(garbage)
        assert list(journal.read()) == records
        journal.append(make_records(6, [b"after recovery"]))
    assert path.stat().st_size == clean_size + len(encode(JournalRecord(6, 0, b"after recovery")))
    assert read_all(path)[-1].payload == b"after recovery"


# -- corruption ------------------------------------------------------------------------------------------------


def test_every_flipped_byte_in_a_middle_record_is_reported_with_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    records = make_records(1, PAYLOADS)
    offsets = write_journal(path, records)
    original = path.read_bytes()
    damaged_seq = 3
    start, end = offsets[damaged_seq - 1], offsets[damaged_seq]
    for position in range(start, end, 7) if end - start > 100 else range(start, end):
        data = bytearray(original)
        data[position] ^= 0x5A
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptJournalError) as caught:
            FileJournal(path)
        assert caught.value.offset == start
        assert caught.value.seq == damaged_seq
        assert f"byte offset {start}" in str(caught.value)
        assert "restore the journal from a replica or backup" in str(caught.value)
        assert path.read_bytes() == bytes(data), "a corrupt journal must be left untouched"


def test_flipped_bit_in_a_small_middle_record_at_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    records = make_records(1, [b"one", b"two", b"three"])
    offsets = write_journal(path, records)
    original = path.read_bytes()
    for position in range(offsets[1], offsets[2]):
        data = bytearray(original)
        data[position] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptJournalError, match=f"byte offset {offsets[1]}"):
            FileJournal(path)


def test_a_checksum_failure_found_while_reading_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    offsets = write_journal(path, make_records(1, [b"one", b"two", b"three"]))
    with FileJournal(path) as journal:
        with path.open("r+b") as f:  # damage after the open-time verification: bit rot
            f.seek(offsets[1] + HEADER.size)
            f.write(b"T")
        assert next(journal.read()).payload == b"one"
        with pytest.raises(CorruptJournalError, match=f"seq 2 at byte offset {offsets[1]}"):
            list(journal.read())


@pytest.mark.parametrize(
    ("seqs", "bad_index"),
    [([1, 2, 4, 5], 2), ([1, 2, 2, 3], 2), ([2, 3], 0), ([1, 2, 3, 7], 3)],
    ids=["gap", "duplicate", "not-from-1", "gap-at-tail"],
)
def test_a_break_in_sequence_numbers_is_corruption(tmp_path: Path, seqs: list[int], bad_index: int) -> None:
    path = tmp_path / "journal"
    offsets = write_journal(path, [JournalRecord(s, 0, b"p%d" % s) for s in seqs])
    size = path.stat().st_size
    with pytest.raises(CorruptJournalError, match=f"found sequence number {seqs[bad_index]}") as caught:
        FileJournal(path)
    assert caught.value.offset == offsets[bad_index]
    assert path.stat().st_size == size


# -- write failures --------------------------------------------------------------------------------------------


def test_a_failed_fsync_refuses_further_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal"
    with FileJournal(path) as journal:
        journal.append(make_records(1, [b"durable"]))

        def failing_sync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(file_journal, "datasync", failing_sync)
        with pytest.raises(JournalError, match="none of them is acknowledged") as caught:
            journal.append(make_records(2, [b"lost", b"lost too"]))
        assert isinstance(caught.value.__cause__, OSError)
        assert journal.last_seq == 1
        monkeypatch.undo()
        with pytest.raises(JournalError, match="refuses appends after a failed write"):
            journal.append(make_records(2, [b"retry"]))
    assert read_all(path) == make_records(1, [b"durable"])


# -- properties ------------------------------------------------------------------------------------------------

batches_strategy = st.lists(
    st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.binary(max_size=200)), min_size=1, max_size=20),
    max_size=8,
)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_strategy, data=st.data())
def test_random_batches_round_trip_exactly(batches: list[list[tuple[int, bytes]]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal"
        expected: list[JournalRecord] = []
        with FileJournal(path, fsync=False) as journal:
            for batch in batches:
                records = [JournalRecord(len(expected) + i + 1, ts, p) for i, (ts, p) in enumerate(batch)]
                journal.append(records)
                expected += records
            assert list(journal.read()) == expected
        with FileJournal(path, fsync=False) as journal:
            assert journal.recovered_tail_bytes == 0
            assert journal.last_seq == len(expected)
            assert list(journal.read()) == expected
            from_seq = data.draw(st.integers(1, len(expected) + 1))
            assert list(journal.read(from_seq)) == expected[from_seq - 1 :]


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(st.binary(max_size=100), min_size=1, max_size=12), data=st.data())
def test_a_cut_anywhere_keeps_exactly_the_complete_records(payloads: list[bytes], data: st.DataObject) -> None:
    records = make_records(1, payloads)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal"
        offsets = write_journal(path, records)
        size = path.stat().st_size
        cut = data.draw(st.integers(len(FILE_MAGIC), size))
        os.truncate(path, cut)
        complete = [r for r, o in zip(records, [*offsets[1:], size], strict=True) if o <= cut]
        with FileJournal(path, fsync=False) as journal:
            assert list(journal.read()) == complete
            kept = offsets[len(complete)] if len(complete) < len(records) else size
            assert journal.recovered_tail_bytes == cut - kept


def test_read_only_open_leaves_a_torn_tail_on_disk_and_reads_the_valid_records(tmp_path: Path) -> None:
    path = tmp_path / "j"
    records = make_records(1, [b"a", b"bb", b"ccc"])
    write_journal(path, records)
    with path.open("ab") as f:
        f.write(b"\x05\x00\x00")  # a partial header: what a crash mid-write leaves
    size = path.stat().st_size
    journal = FileJournal(path, read_only=True)
    try:
        assert journal.last_seq == 3
        assert journal.recovered_tail_bytes == 3
        assert list(journal.read()) == records
        with pytest.raises(JournalError, match="read-only"):
            journal.append(make_records(4, [b"d"]))
    finally:
        journal.close()
    assert path.stat().st_size == size  # nothing cut, nothing written


def test_read_only_open_works_beside_the_writer_and_refuses_missing_or_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with FileJournal(path) as writer:
        writer.append(make_records(1, [b"x"]))
        with FileJournal(path, read_only=True) as reader:  # no lock taken: replay beside a running exchange
            assert reader.last_seq == 1
    with pytest.raises(JournalError, match="no journal"):
        FileJournal(tmp_path / "missing", read_only=True)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(JournalError, match="empty"):
        FileJournal(tmp_path / "empty", read_only=True)
    assert (tmp_path / "empty").read_bytes() == b""
