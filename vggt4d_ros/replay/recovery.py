# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Per-chunk checksums for the MCAP bags the project writes, and reading what survives damage.

``rosbags`` writes MCAP chunks with CRC 0 ("not computed"), so a flipped byte is either
silently read as wrong data or breaks the parse of everything after it. :func:`add_chunk_crcs`
rewrites a finished file with the ``mcap`` writer: the same schemas, channels and messages in
the same order, in chunks of at most ``CHUNK_BYTES`` (about one camera frame) that each carry
the CRC-32 of their content. Readers then detect damage (``rosbags`` raises on a mismatch), and
:func:`recover_mcap` reads every intact chunk through the summary's chunk index, skipping the
damaged ones and reporting what they held (topic counts and time range).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import io
import os
from pathlib import Path

from mcap.exceptions import EndOfFile
from mcap.reader import make_reader
from mcap.records import Chunk
from mcap.records import Message
from mcap.records import MessageIndex
from mcap.stream_reader import breakup_chunk
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType
from mcap.writer import Writer

#: Largest chunk written: a damaged byte costs at most about this much data (one VGA frame).
CHUNK_BYTES = 1 << 20


def add_chunk_crcs(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> None:
    """Rewrite the MCAP file ``path`` in place with a CRC-32 on every chunk.

    Raises:
        OSError, mcap errors: the source cannot be read (it is left unchanged).

    """
    path = Path(path)
    tmp = path.with_name(path.name + '.crc.tmp')
    try:
        with open(path, 'rb') as source, open(tmp, 'wb') as target:
            reader = make_reader(source)
            header = reader.get_header()
            summary = reader.get_summary()
            writer = Writer(target, chunk_size=chunk_bytes, compression=CompressionType.NONE,
                            enable_crcs=True)
            writer.start(header.profile, header.library)
            schema_ids: dict[int, int] = {}
            channel_ids: dict[int, int] = {}
            for schema in (summary.schemas.values() if summary else ()):
                schema_ids[schema.id] = writer.register_schema(schema.name, schema.encoding,
                                                               schema.data)
            for channel in (summary.channels.values() if summary else ()):
                channel_ids[channel.id] = writer.register_channel(
                    channel.topic, channel.message_encoding,
                    schema_ids.get(channel.schema_id, 0), channel.metadata)
            for schema, channel, message in reader.iter_messages(log_time_order=False):
                if schema is not None and schema.id not in schema_ids:
                    schema_ids[schema.id] = writer.register_schema(schema.name, schema.encoding,
                                                                   schema.data)
                if channel.id not in channel_ids:
                    channel_ids[channel.id] = writer.register_channel(
                        channel.topic, channel.message_encoding,
                        schema_ids.get(channel.schema_id, 0), channel.metadata)
                writer.add_message(channel_ids[channel.id], message.log_time, message.data,
                                   message.publish_time, message.sequence)
            writer.finish()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class RecoveredMessage:
    """One intact message: topic, ROS type, bag time and its CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


@dataclass
class LostChunk:
    """A damaged chunk that was skipped.

    Attributes:
        offset: byte offset of the chunk in the file.
        start_ns / end_ns: bag-time range of the messages it held.
        reason: why it was skipped (CRC mismatch, parse error, ...).
        messages: topic -> messages lost (from the message index; None when unreadable).

    """

    offset: int
    start_ns: int
    end_ns: int
    reason: str
    messages: dict[str, int] | None


@dataclass
class Recovery:
    """What :func:`recover_mcap` read: intact messages in file order and the lost chunks."""

    messages: list[RecoveredMessage] = field(default_factory=list)
    lost: list[LostChunk] = field(default_factory=list)

    def report(self) -> str:
        """One paragraph for a log or an error message."""
        lines = [f'{len(self.messages)} messages recovered, {len(self.lost)} damaged chunks '
                 'skipped']
        for chunk in self.lost:
            held = ('unknown messages' if chunk.messages is None else ', '.join(
                f'{count} on {topic}' for topic, count in sorted(chunk.messages.items())))
            lines.append(f'  chunk at byte {chunk.offset} (bag time {chunk.start_ns}..'
                         f'{chunk.end_ns} ns): {held} lost ({chunk.reason})')
        return '\n'.join(lines)


def recover_mcap(path: str | Path) -> Recovery:
    """Read every intact message of an MCAP file, skipping damaged chunks (see module doc).

    Needs the file's summary (chunk index), which the writers used here always write. All
    recovered messages are held in memory: meant for the output bags of a replay run.

    Raises:
        ValueError: the summary is unreadable, so chunks cannot be located.

    """
    path = Path(path)
    with open(path, 'rb') as stream:
        try:
            summary = make_reader(stream).get_summary()
        except Exception as error:  # noqa: B902 - mcap raises many types for damaged files
            raise ValueError(f'{path}: MCAP summary unreadable ({error})') from error
        if summary is None:
            raise ValueError(f'{path}: no MCAP summary (chunk index) to recover from')
        topics = {cid: channel.topic for cid, channel in summary.channels.items()}
        types = {cid: summary.schemas[channel.schema_id].name
                 if channel.schema_id in summary.schemas else ''
                 for cid, channel in summary.channels.items()}
        recovery = Recovery()
        for index in sorted(summary.chunk_indexes, key=lambda item: item.chunk_start_offset):
            stream.seek(index.chunk_start_offset)
            raw = stream.read(index.chunk_length)
            try:
                records = _chunk_records(raw)
            except Exception as error:  # noqa: B902 - CRC, decompression or parse errors
                recovery.lost.append(LostChunk(
                    index.chunk_start_offset, index.message_start_time,
                    index.message_end_time, f'{type(error).__name__}: {error}',
                    _indexed_counts(stream, index, topics)))
                continue
            recovery.messages.extend(
                RecoveredMessage(topics.get(record.channel_id, ''),
                                 types.get(record.channel_id, ''), record.log_time,
                                 bytes(record.data))
                for record in records if isinstance(record, Message))
    return recovery


def _chunk_records(raw: bytes) -> list:
    chunk = next(iter(StreamReader(io.BytesIO(raw), skip_magic=True, emit_chunks=True)
                      .records))
    if not isinstance(chunk, Chunk):
        raise ValueError(f'expected a chunk record, found {type(chunk).__name__}')
    return breakup_chunk(chunk, validate_crc=True)


def _indexed_counts(stream, index, topics: dict[int, str]) -> dict[str, int] | None:
    """Topic -> message count of a chunk from its message index records (None if damaged)."""
    if not index.message_index_offsets:
        return {}
    try:
        start = min(index.message_index_offsets.values())
        stream.seek(start)
        raw = stream.read(index.message_index_length)
        counts: dict[str, int] = {}
        records = StreamReader(io.BytesIO(raw), skip_magic=True).records
        while True:
            try:
                record = next(records)
            except (StopIteration, EndOfFile):  # the slice ends without a footer
                return counts
            if isinstance(record, MessageIndex):
                topic = topics.get(record.channel_id, str(record.channel_id))
                counts[topic] = counts.get(topic, 0) + len(record.records)
    except Exception:  # noqa: B902 - the index may be damaged too
        return None
