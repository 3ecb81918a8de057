#!/usr/bin/env python3
"""Parser throughput of a Python HL7 library on a corpus directory, timed the way
crates/cuvette-hl7/examples/parse_corpus.rs times Cuvette's parser.

Usage: hl7_parse_peer.py {python-hl7|hl7apy} DIR [SECONDS]

Every file is read into memory first (as text: the libraries parse str). Then, over and over
for about SECONDS seconds: parse every message and read every OBX-5.

  python-hl7  hl7.parse(text); for each msg.segments("OBX"): msg.unescape(str(obx[5]))
              (the field as text with its escape sequences decoded, as Cuvette reads it)
  hl7apy      parse_message(text, find_groups=False); for each OBX child, every repetition's
              .value (hl7apy has no unescape: its values keep their escape sequences, so it
              does a little less than the other two)

The last line is for scripts:
RESULT impl=… messages=… bytes=… seconds=… msg_per_s=… mb_per_s=… obx_per_pass=…
"""

import os
import sys
import time


def python_hl7():
    import hl7

    def one(text):
        msg = hl7.parse(text)
        n = chars = 0
        for obx in msg.segments("OBX"):
            n += 1
            chars += len(msg.unescape(str(obx[5])))
        return n, chars

    return one


def hl7apy():
    from hl7apy.parser import parse_message

    def one(text):
        msg = parse_message(text, find_groups=False)
        n = chars = 0
        for obx in msg.children.get("OBX"):
            n += 1
            for rep in obx.obx_5:
                chars += len(rep.value)
        return n, chars

    return one


def main():
    impl, directory = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    one = {"python-hl7": python_hl7, "hl7apy": hl7apy}[impl]()
    names = sorted(f for f in os.listdir(directory) if os.path.isfile(os.path.join(directory, f)))
    raw = [open(os.path.join(directory, f), "rb").read() for f in names]
    corpus = [b.decode("utf-8") for b in raw]
    corpus_bytes = sum(len(b) for b in raw)

    # Warm-up on the first messages, checking that every OBX is read. (A whole pass of hl7apy
    # takes over a minute, so the peers are not given one.)
    for text in corpus[:30]:
        n, _ = one(text)
        expected = text.count("\rOBX|")
        assert n == expected, f"read {n} OBX of {expected}"
    obx_per_pass = sum(text.count("\rOBX|") for text in corpus)
    # Messages rotate through 1, 10 and 100 OBX: stop on a multiple of 3 so the sizes stay
    # balanced even when the budget ends part-way through a pass.
    started = time.perf_counter()
    messages = nbytes = 0
    done = False
    while not done:
        for text, b in zip(corpus, raw):
            one(text)
            messages += 1
            nbytes += len(b)
            if messages % 3 == 0 and time.perf_counter() - started >= seconds:
                done = True
                break
    elapsed = time.perf_counter() - started
    msg_per_s = messages / elapsed
    mb_per_s = nbytes / elapsed / 1e6
    print(f"{impl}: {len(corpus)} files, {messages} messages in {elapsed:.2f} s: "
          f"{msg_per_s:.0f} messages/s, {mb_per_s:.2f} MB/s")
    print(f"RESULT impl={impl} messages={messages} bytes={nbytes} seconds={elapsed:.4f} "
          f"msg_per_s={msg_per_s:.1f} mb_per_s={mb_per_s:.3f} obx_per_pass={obx_per_pass}")


if __name__ == "__main__":
    main()
