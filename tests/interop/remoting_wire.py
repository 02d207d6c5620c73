"""A minimal RocketMQ remoting peer written from the protocol description alone.

It shares no code with Apogee: frames are built and parsed here with the standard library,
so a test built on it checks Apogee against the wire format, not against itself.
"""
import base64
import hashlib
import hmac
import json
import socket
import struct

JSON, ROCKETMQ = 0, 1
LANGUAGES = ["JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER",
             "HTTP", "GO", "PHP", "OMS", "RUST", "NODE_JS"]


def signed(fields, access_key, secret_key, body=b""):
    """`fields` plus AccessKey and Signature: HMAC-SHA1 over the values in key order, then the
    body, Base64 (the ACL 1.0 scheme)."""
    fields = dict(fields, AccessKey=access_key)
    content = "".join(fields[key] for key in sorted(fields)).encode() + body
    digest = hmac.new(secret_key.encode(), content, hashlib.sha1).digest()
    return dict(fields, Signature=base64.b64encode(digest).decode())


def encode_header(serialization, code, opaque, ext, version, flag=0, remark=None):
    if serialization == JSON:
        header = {"code": code, "language": "PYTHON", "version": version,
                  "opaque": opaque, "flag": flag, "extFields": ext}
        if remark is not None:
            header["remark"] = remark
        return json.dumps(header).encode()
    out = struct.pack(">hBhii", code, LANGUAGES.index("PYTHON"), version, opaque, flag)
    remark_bytes = (remark or "").encode()
    out += struct.pack(">i", len(remark_bytes)) + remark_bytes
    fields = b""
    for key, value in ext.items():
        k, v = key.encode(), str(value).encode()
        fields += struct.pack(">h", len(k)) + k + struct.pack(">i", len(v)) + v
    return out + struct.pack(">i", len(fields)) + fields


def decode_header(serialization, data):
    if serialization == JSON:
        return json.loads(data.decode())
    code, language, version, opaque, flag = struct.unpack_from(">hBhii", data, 0)
    at = 13
    (remark_len,) = struct.unpack_from(">i", data, at)
    at += 4
    remark = data[at:at + remark_len].decode() if remark_len else None
    at += remark_len
    (ext_len,) = struct.unpack_from(">i", data, at)
    at += 4
    end = at + ext_len
    ext = {}
    while at < end:
        (key_len,) = struct.unpack_from(">h", data, at)
        at += 2
        key = data[at:at + key_len].decode()
        at += key_len
        (value_len,) = struct.unpack_from(">i", data, at)
        at += 4
        ext[key] = data[at:at + value_len].decode()
        at += value_len
    header = {"code": code, "language": LANGUAGES[language], "version": version,
              "opaque": opaque, "flag": flag, "extFields": ext}
    if remark is not None:
        header["remark"] = remark
    return header


def frame(serialization, header_bytes, body=b""):
    word = (serialization << 24) | len(header_bytes)
    return struct.pack(">ii", 4 + len(header_bytes) + len(body), word) + header_bytes + body


class Connection:
    """One TCP connection speaking remoting frames, requests answered in order."""

    def __init__(self, address, serialization=JSON, timeout_s=5.0):
        self.sock = socket.create_connection(address, timeout=timeout_s)
        self.serialization = serialization
        self.opaque = 0

    def close(self):
        self.sock.close()

    def _read_exact(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("connection closed by the server")
            data += chunk
        return data

    def read_frame(self):
        (length,) = struct.unpack(">i", self._read_exact(4))
        payload = self._read_exact(length)
        (word,) = struct.unpack_from(">I", payload, 0)
        serialization, header_len = word >> 24, word & 0xFFFFFF
        header = decode_header(serialization, payload[4:4 + header_len])
        header["_serialization"] = serialization
        return header, payload[4 + header_len:]

    def request(self, code, ext=None, body=b"", version=479, oneway=False):
        self.opaque += 1
        flag = 2 if oneway else 0
        header = encode_header(self.serialization, code, self.opaque, ext or {}, version, flag)
        self.sock.sendall(frame(self.serialization, header, body))
        if oneway:
            return None, None
        response, response_body = self.read_frame()
        assert response["opaque"] == self.opaque, (response, self.opaque)
        assert response["flag"] & 1 == 1, response
        return response, response_body

    def is_closed_by_server(self, wait_s=3.0):
        """True once the server closes the connection (reads EOF) within wait_s."""
        self.sock.settimeout(wait_s)
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True


def properties_text(pairs):
    return "".join(f"{key}\x01{value}\x02" for key, value in pairs.items())


def parse_properties(text):
    pairs = {}
    for item in text.split("\x02"):
        if "\x01" in item:
            key, value = item.split("\x01", 1)
            pairs[key] = value
    return pairs


def decode_records(data):
    """Stored message records (the PULL body and the CHECK body), IPv4 hosts."""
    records, at = [], 0
    while at + 4 <= len(data):
        (total,) = struct.unpack_from(">i", data, at)
        record = data[at:at + total]
        (queue_id, flag, queue_offset, commit_log_offset, sys_flag) = struct.unpack_from(">iiqqi", record, 12)
        cursor = 12 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8  # through the store host
        (reconsume_times, prepared_offset, body_len) = struct.unpack_from(">iqi", record, cursor)
        cursor += 16
        body = record[cursor:cursor + body_len]
        cursor += body_len
        topic_len = record[cursor]
        topic = record[cursor + 1:cursor + 1 + topic_len].decode()
        cursor += 1 + topic_len
        (props_len,) = struct.unpack_from(">h", record, cursor)
        props = parse_properties(record[cursor + 2:cursor + 2 + props_len].decode())
        records.append({"topic": topic, "queue_id": queue_id, "queue_offset": queue_offset,
                        "commit_log_offset": commit_log_offset, "sys_flag": sys_flag,
                        "body": body.decode(), "properties": props, "flag": flag,
                        "reconsume_times": reconsume_times})
        at += total
    return records
