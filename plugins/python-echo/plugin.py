#!/usr/bin/python3 -IS
"""plugwarden protocol v1 in Python, standard library only: echoes each job."""
import struct
import sys

HEADER = struct.Struct("<2sBBIQ")  # magic, kind, flags, length, job id
HELLO, JOB, PART, DONE, ERROR = 1, 2, 3, 4, 5
INPUT_PARTS = 0x02  # hello flag: a job's input may come in several frames


def read_exact(stream, n):
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_frame(stream, max_frame):
    head = read_exact(stream, HEADER.size)
    if head is None:
        return None
    magic, kind, flags, length, job = HEADER.unpack(head)
    if magic != b"PW" or flags != 0 or length > max_frame:
        raise SystemExit("bad frame from host")
    payload = read_exact(stream, length)
    if payload is None:
        raise SystemExit("host closed the pipe mid-frame")
    return kind, job, payload


def write_frame(stream, kind, job, payload, flags=0):
    stream.write(HEADER.pack(b"PW", kind, flags, len(payload), job))
    stream.write(payload)
    stream.flush()


def main(handle):
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    kind, _, payload = read_frame(stdin, 64)
    version, max_frame = struct.unpack("<II", payload[:8])
    if kind != HELLO or version != 1:
        raise SystemExit("host does not speak protocol 1")
    write_frame(stdout, HELLO, 0, struct.pack("<I", 1) + b"python-echo", INPUT_PARTS)
    parts = []
    while (frame := read_frame(stdin, max_frame)) is not None:
        kind, job, payload = frame
        if kind == PART:  # more of this job's input follows
            parts.append(payload)
            continue
        data, parts = b"".join(parts) + payload, []
        try:
            out = memoryview(handle(data))
            while len(out) > max_frame:  # no frame over the host's limit
                write_frame(stdout, PART, job, out[:max_frame])
                out = out[max_frame:]
            write_frame(stdout, DONE, job, out)
        except Exception as e:  # the job fails, the worker goes on
            write_frame(stdout, ERROR, job, str(e).encode()[:max_frame])


if __name__ == "__main__":
    main(lambda data: data)
