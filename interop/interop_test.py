"""Cuvette against third-party peers: python-hl7's mllp_send, hl7apy, and the corpus of
public sample messages. Run by interop/run.sh against a fresh demo lab."""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from hl7apy.parser import parse_message
from hl7apy.consts import VALIDATION_LEVEL

URL = os.environ["CUVETTE_URL"]
MLLP_PORT = int(os.environ["CUVETTE_MLLP_PORT"])
KEY = os.environ["CUVETTE_API_KEY"]
CORPUS = pathlib.Path(os.environ["CORPUS_DIR"])
MLLP_SEND = os.environ["MLLP_SEND"]
EMITTED = []  # every message Cuvette sent back, for hl7apy


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + KEY)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


_mrn = [int(time.time()) % 100000]


def received_specimen(tests):
    """An order for a new patient, collected and received; returns the accession."""
    _mrn[0] += 1
    patient = {"mrn": f"IOP{_mrn[0]}", "family_name": "Interop", "given_name": "Ivy", "birth_date": "1968-02-29", "sex": "F"}
    placed = api("POST", "/api/v1/orders", {"patient": patient, "provider": "Dr. Peer", "tests": tests})
    acc = placed["accessions"][0]
    api("POST", f"/api/v1/specimens/{acc}/collect")
    api("POST", f"/api/v1/specimens/{acc}/receive", {"mrn": patient["mrn"], "birth_date": patient["birth_date"]})
    return acc


def oru(control_id, accession, observations, sender="DEMOCHEM"):
    segs = [
        f"MSH|^~\\&|{sender}|LAB|CUVETTE|LAB|20261124120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1",
        "PID|1||X",
        f"OBR|1||{accession}|24321-2^BMP^LN",
    ]
    for i, (code, value, unit) in enumerate(observations, 1):
        segs.append(f"OBX|{i}|NM|{code}^^LN||{value}|{unit}|||||F")
    return "\r".join(segs) + "\r"


def mllp_send(message):
    """Sends with python-hl7's mllp_send and returns the acknowledgement it printed."""
    # --loose: the file holds plain messages (segments on lines), which mllp_send frames itself.
    with tempfile.NamedTemporaryFile("w", suffix=".hl7", delete=False) as f:
        f.write(message.replace("\r", "\n"))
        path = f.name
    out = subprocess.run(
        [MLLP_SEND, "--loose", "-p", str(MLLP_PORT), "-f", path, "127.0.0.1"], capture_output=True, text=True, timeout=60
    )
    os.unlink(path)
    assert out.returncode == 0, out.stderr
    ack = out.stdout.strip().replace("\n", "\r")
    EMITTED.append(ack)
    return ack


def send_raw(data, timeout=15):
    """Sends raw bytes in one MLLP frame and returns the acknowledgement's bytes."""
    with socket.create_connection(("127.0.0.1", MLLP_PORT), timeout=timeout) as s:
        s.sendall(b"\x0b" + data + b"\x1c\x0d")
        buf = b""
        while not buf.endswith(b"\x1c\x0d"):
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("the listener closed the connection without an acknowledgement")
            buf += chunk
        ack = buf.strip(b"\x0b\x1c\x0d")
        EMITTED.append(ack.decode("utf-8", "replace"))
        return ack


def msa(ack):
    text = ack.decode("utf-8", "replace") if isinstance(ack, bytes) else ack
    sep = text[3] if len(text) > 3 else "|"  # the acknowledgement answers in the sender's delimiters
    for seg in text.replace("\n", "\r").split("\r"):
        if seg.startswith("MSA" + sep):
            return seg.split(sep)
    raise AssertionError("no MSA segment in " + repr(text))


class Results(unittest.TestCase):
    def test_mllp_send_delivers_an_oru_and_gets_AA(self):
        acc = received_specimen(["K"])
        ack = mllp_send(oru("IOP-ORU-1", acc, [("2823-3", "4.3", "mmol/L")]))
        self.assertEqual(msa(ack)[1], "AA", ack)
        self.assertEqual(msa(ack)[2], "IOP-ORU-1")
        specimen = api("GET", f"/api/v1/specimens/{acc}")
        k = next(t for t in specimen["tests"] if t["test_code"] == "K")
        self.assertEqual(k["result"]["value_text"], "4.3")
        self.assertEqual(k["result"]["entered_by"], "instrument:Demo chemistry analyzer")

    def test_a_retransmission_is_answered_the_same_and_stored_once(self):
        acc = received_specimen(["K"])
        message = oru("IOP-ORU-2", acc, [("2823-3", "4.4", "mmol/L")])
        first, second = mllp_send(message), mllp_send(message)
        self.assertEqual(msa(first), msa(second))
        specimen = api("GET", f"/api/v1/specimens/{acc}")
        k = next(t for t in specimen["tests"] if t["test_code"] == "K")
        self.assertEqual(len(k["versions"]), 1)

    def test_an_unknown_specimen_gets_AE_with_the_reason(self):
        ack = mllp_send(oru("IOP-ORU-3", "26-0000999-3", [("2823-3", "4.1", "mmol/L")]))
        fields = msa(ack)
        self.assertEqual(fields[1], "AE", ack)
        self.assertIn("no specimen has accession number", ack)


class Corpus(unittest.TestCase):
    def test_every_corpus_message_is_answered_and_none_stops_the_listener(self):
        files = sorted(CORPUS.glob("*.hl7"))
        self.assertGreater(len(files), 10)
        for path in files:
            with self.subTest(path.name):
                ack = send_raw(path.read_bytes())
                code = msa(ack)[1]
                self.assertIn(code, ("AA", "AE", "AR"), ack)
                if code != "AA":
                    # Refused with a precise reason: MSA-3 or an ERR segment says why.
                    text = ack.decode("utf-8", "replace")
                    self.assertTrue((len(msa(ack)) > 3 and msa(ack)[3]) or "ERR" in text, text)
        # The listener still takes ordinary work afterwards.
        acc = received_specimen(["NA"])
        self.assertEqual(msa(mllp_send(oru("IOP-AFTER", acc, [("2951-2", "140", "mmol/L")])))[1], "AA")


ASTM_PORT = int(os.environ.get("CUVETTE_ASTM_PORT") or 0)


@unittest.skipUnless(ASTM_PORT, "this build has no ASTM listener")
class Astm(unittest.TestCase):
    def test_the_astm_package_client_sends_a_session_that_is_stored(self):
        from astm.client import Client

        acc = received_specimen(["TSH"])
        unit = api("GET", "/api/v1/catalog/tests/TSH")["definition"]["unit"]

        # Records as lists: the package's record classes drop the fields it marks unused
        # (H-5 sender, R-5 units, R-9 status), which an LIS needs.
        def emitter():
            yield ["H", [[], ["", "&"]], None, None, ["DEMOIMMUNO", "1.0"], None, None, None, None, None, None, "P", None, "20261124120000"]
            yield ["P", "1"]
            yield ["O", "1", acc, None, [None, None, None, "TSH"]]
            yield ["R", "1", [None, None, None, "TSH"], "2.10", unit, None, None, None, "F"]
            yield ["L", "1", "N"]

        client = Client(emitter, "127.0.0.1", ASTM_PORT, timeout=20, bulk_mode=True)
        client.run(timeout=1)
        deadline = time.time() + 20
        while True:
            tsh = next(t for t in api("GET", f"/api/v1/specimens/{acc}")["tests"] if t["test_code"] == "TSH")
            if tsh["result"] or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertIsNotNone(tsh["result"], "the result from the astm client was stored")
        self.assertEqual(tsh["result"]["value_text"], "2.10")
        self.assertEqual(tsh["result"]["entered_by"], "instrument:Demo immunoassay analyzer")


class Conformance(unittest.TestCase):
    def test_hl7apy_validates_every_message_cuvette_emitted(self):
        # Runs last (alphabetical order of classes): everything sent back so far.
        self.assertTrue(EMITTED)
        for text in EMITTED:
            with self.subTest(text[:60]):
                m = parse_message(text.replace("\n", "\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
                m.validate()


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    for case in (Results, Corpus, Astm, Conformance):
        suite.addTests(loader.loadTestsFromTestCase(case))
    return suite


if __name__ == "__main__":
    unittest.main()
