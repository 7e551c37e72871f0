# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A small Foxglove WebSocket client for tests (the ``websockets`` package, sync API).

Protocol facts used: the server sends JSON ``serverInfo`` and ``advertise`` (channels with
``id``, ``topic``, ``encoding``, ``schemaName``, ``schema``); the client sends ``subscribe``
with its own subscription ids; message data arrives as binary frames: opcode 0x01, the
subscription id (uint32 LE), the log time (uint64 LE), then the payload (here protobuf, the
schema a base64 ``FileDescriptorSet``). Payloads are decoded with a minimal protobuf wire
reader, field numbers and types looked up by name in the advertised descriptors, so the
checks read what a Foxglove app would read.
"""

from __future__ import annotations

import base64
import json
import struct
import time

from waiting import LoadScaledDeadline

#: Subprotocols offered: the SDK's server (0.30) accepts only the first; older servers and
#: the ws-protocol spec use the second.
SUBPROTOCOLS = ['foxglove.sdk.v1', 'foxglove.websocket.v1']


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def wire_fields(buf: bytes) -> dict[int, list]:
    """Protobuf message bytes -> {field number: [raw values]} (varints as int, rest as bytes)."""
    out: dict[int, list] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f'unsupported wire type {wire}')
        out.setdefault(number, []).append(value)
    return out


#: FieldDescriptorProto types read as fixed-size little-endian scalars.
_FIXED = {1: '<d', 2: '<f', 6: '<Q', 7: '<I', 15: '<i', 16: '<q'}


def message_fields(schema_b64: str) -> dict[str, dict[str, tuple[int, int, str]]]:
    """Full message name -> {field name: (number, type, type name)} from a FileDescriptorSet."""
    messages: dict[str, dict[str, tuple[int, int, str]]] = {}
    for file_bytes in wire_fields(base64.b64decode(schema_b64)).get(1, []):
        file = wire_fields(file_bytes)
        package = file.get(2, [b''])[0].decode()
        for message_bytes in file.get(4, []):
            message = wire_fields(message_bytes)
            name = f'{package}.{message[1][0].decode()}' if package else message[1][0].decode()
            fields = {}
            for field_bytes in message.get(2, []):
                item = wire_fields(field_bytes)
                fields[item[1][0].decode()] = (item[3][0], item[5][0],
                                               item.get(6, [b''])[0].decode().lstrip('.'))
            messages[name] = fields
    return messages


class Decoded:
    """A protobuf message read by field name (``get``: first value, ``all``: every value)."""

    def __init__(self, schema: dict, name: str, payload: bytes) -> None:
        self._schema = schema
        self._by_name = schema[name]
        self._fields = wire_fields(payload)

    def all(self, name: str) -> list:
        number, kind, _ = self._by_name[name]
        values = self._fields.get(number, [])
        if kind in _FIXED:
            return [struct.unpack(_FIXED[kind], value)[0] for value in values]
        return values

    def get(self, name: str, default=None):
        values = self.all(name)
        return values[0] if values else default

    def text(self, name: str) -> str:
        return self.get(name, b'').decode()

    def nested(self, name: str) -> list['Decoded']:
        type_name = self._by_name[name][2]
        return [Decoded(self._schema, type_name, value) for value in self.all(name)]


class FoxgloveClient:
    """Connect, read the advertised channels, subscribe, collect decoded messages."""

    def __init__(self, port: int, host: str = '127.0.0.1', timeout_s: float = 10.0) -> None:
        from websockets.sync.client import connect

        deadline = LoadScaledDeadline(timeout_s)
        while True:
            try:
                self._connection = connect(f'ws://{host}:{port}', subprotocols=SUBPROTOCOLS,
                                           open_timeout=timeout_s, max_size=None)
                break
            except OSError:
                if deadline.expired():
                    raise
                time.sleep(0.1)
        self.ws = self._connection.__enter__()
        self.server_info: dict = {}
        self.channels: dict[str, dict] = {}
        self.messages: dict[str, list[Decoded]] = {}
        self._subscriptions: dict[int, str] = {}
        self._schemas: dict[str, dict] = {}

    def close(self) -> None:
        self._connection.__exit__(None, None, None)

    def read_advertisements(self, topics: set[str], timeout_s: float = 10.0) -> None:
        """Read control messages until every topic of ``topics`` was advertised."""
        deadline = LoadScaledDeadline(timeout_s)
        while not topics <= set(self.channels):
            if deadline.expired():
                raise TimeoutError(f'advertised: {sorted(self.channels)}')
            self._receive_one(timeout=0.5)

    def subscribe(self, topics: list[str]) -> None:
        subscriptions = []
        for topic in topics:
            subscription = len(self._subscriptions) + 1
            self._subscriptions[subscription] = topic
            self.messages.setdefault(topic, [])
            subscriptions.append({'id': subscription, 'channelId': self.channels[topic]['id']})
        self.ws.send(json.dumps({'op': 'subscribe', 'subscriptions': subscriptions}))

    def receive_until(self, done, timeout_s: float) -> None:
        """Read messages until ``done(self)`` is true, or raise TimeoutError."""
        deadline = LoadScaledDeadline(timeout_s)
        while not done(self):
            if deadline.expired():
                counts = {topic: len(items) for topic, items in self.messages.items()}
                raise TimeoutError(f'messages so far: {counts}')
            self._receive_one(timeout=0.5)

    def _receive_one(self, timeout: float) -> None:
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return
        if isinstance(frame, str):
            message = json.loads(frame)
            if message['op'] == 'serverInfo':
                self.server_info = message
            elif message['op'] == 'advertise':
                for channel in message['channels']:
                    self.channels[channel['topic']] = channel
            return
        opcode, subscription, _log_time = struct.unpack_from('<BIQ', frame)
        if opcode != 1:
            return
        topic = self._subscriptions[subscription]
        channel = self.channels[topic]
        schema = self._schemas.setdefault(topic, message_fields(channel['schema']))
        self.messages[topic].append(Decoded(schema, channel['schemaName'], frame[13:]))
