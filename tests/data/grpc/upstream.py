#!/usr/bin/env python3
"""A gRPC DNS upstream as CoreDNS's grpc plugin calls one: coredns.dns.DnsService/Query with a
DnsPacket {bytes msg = 1} each way, served by grpcio (Debian's python3-grpcio), answers made by
dnspython.

    upstream.py PORT [CERT KEY]

Answers: NAME.example.org A -> 192.0.2.1 (and the name's first label in a TXT record);
nx.* -> gRPC NOT_FOUND; nxdomain.* -> NXDOMAIN; fail.* -> gRPC INTERNAL; every other name
REFUSED. Prints "ready" once listening, then one line per call: the peer and the question.
"""

import sys
from concurrent import futures

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(msg):
    return b"\x0a" + varint(len(msg)) + msg


def decode(data):
    """Field 1 of a DnsPacket; other fields are skipped."""
    at, msg = 0, b""
    while at < len(data):
        key, at = read_varint(data, at)
        field, kind = key >> 3, key & 7
        if kind == 2:
            n, at = read_varint(data, at)
            if field == 1:
                msg = data[at:at + n]
            at += n
        elif kind == 0:
            _, at = read_varint(data, at)
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        else:
            raise ValueError("bad wire type")
    return msg


def read_varint(data, at):
    n, shift = 0, 0
    while True:
        b = data[at]
        at += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, at
        shift += 7


def query(msg, context):
    q = dns.message.from_wire(msg)
    question = q.question[0]
    name = question.name.to_text().lower()
    print(f"call {context.peer()} {name} {dns.rdatatype.to_text(question.rdtype)}", flush=True)
    if name.startswith("nx."):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such name")
    if name.startswith("fail."):
        context.abort(grpc.StatusCode.INTERNAL, "it failed")
    r = dns.message.make_response(q)
    if name.startswith("nxdomain."):
        r.set_rcode(dns.rcode.NXDOMAIN)
    elif name.endswith("example.org."):
        if question.rdtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "192.0.2.1"))
        elif question.rdtype == dns.rdatatype.TXT:
            label = question.name.labels[0].decode()
            r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", f'"{label}"'))
    else:
        r.set_rcode(dns.rcode.REFUSED)
    return r.to_wire()


def main():
    port = sys.argv[1]
    handler = grpc.method_handlers_generic_handler(
        "coredns.dns.DnsService",
        {
            "Query": grpc.unary_unary_rpc_method_handler(
                query, request_deserializer=decode, response_serializer=encode
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    address = f"127.0.0.1:{port}"
    if len(sys.argv) > 3:
        with open(sys.argv[2], "rb") as c, open(sys.argv[3], "rb") as k:
            credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
