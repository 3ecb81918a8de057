"""Cuvette against third-party peers: python-hl7's mllp_send, hl7apy, and the corpus of
public sample messages. Run by interop/run.sh against a fresh demo lab."""

import hashlib
import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from hl7apy.parser import parse_message
from hl7apy.consts import VALIDATION_LEVEL

URL = os.environ["CUVETTE_URL"]
MLLP_PORT = int(os.environ["CUVETTE_MLLP_PORT"])
KEY = os.environ["CUVETTE_API_KEY"]
# A supervisor's key, for setting up an instrument (the technologist's key may not).
ADMIN_KEY = os.environ.get("CUVETTE_ADMIN_KEY", KEY)
CORPUS = pathlib.Path(os.environ["CORPUS_DIR"])
MLLP_SEND = os.environ["MLLP_SEND"]
EMITTED = []  # every message Cuvette sent back, for hl7apy


def api(method, path, body=None, key=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + (key or KEY))
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
        "PID|1",
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


def send_collecting(data, first_timeout=15, quiet=3):
    """Sends raw bytes in one MLLP frame and returns every acknowledgement answered, in order:
    it waits up to `first_timeout` seconds for the first and stops after `quiet` seconds
    without another (enhanced mode may answer twice, or not at all)."""
    acks = []
    with socket.create_connection(("127.0.0.1", MLLP_PORT), timeout=first_timeout) as s:
        s.sendall(b"\x0b" + data + b"\x1c\x0d")
        buf = b""
        while True:
            s.settimeout(first_timeout if not acks and not buf else quiet)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\x1c\x0d" in buf:
                frame, buf = buf.split(b"\x1c\x0d", 1)
                ack = frame.strip(b"\x0b")
                EMITTED.append(ack.decode("utf-8", "replace"))
                acks.append(ack)
    return acks


def ack_modes(data):
    """MSH-15 and MSH-16 of the first message: ("", "") asks for the original mode; in the
    enhanced mode an empty field means AL."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    for seg in text.replace("\n", "\r").split("\r"):
        if seg.startswith("MSH") and len(seg) > 3:
            fields = seg.split(seg[3])
            accept = fields[14] if len(fields) > 14 else ""
            application = fields[15] if len(fields) > 15 else ""
            if not accept and not application:
                return ("", "")
            return (accept or "AL", application or "AL")
    return ("", "")


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


    def test_mllp_send_in_enhanced_mode_gets_only_the_acknowledgements_asked_for(self):
        # MSH-15 NE, MSH-16 AL: no commit acknowledgement, the application's alone.
        acc = received_specimen(["K"])
        message = oru("IOP-ENH-1", acc, [("2823-3", "4.2", "mmol/L")]).replace("|P|2.5.1", "|P|2.5.1|||NE|AL", 1)
        ack = mllp_send(message)
        self.assertEqual(msa(ack)[1:3], ["AA", "IOP-ENH-1"], ack)
        # MSH-15 AL, MSH-16 NE: the commit accept alone, sent once the message is stored.
        acc = received_specimen(["K"])
        message = oru("IOP-ENH-2", acc, [("2823-3", "4.6", "mmol/L")]).replace("|P|2.5.1", "|P|2.5.1|||AL|NE", 1)
        ack = mllp_send(message)
        self.assertEqual(msa(ack)[1:3], ["CA", "IOP-ENH-2"], ack)
        k = next(t for t in api("GET", f"/api/v1/specimens/{acc}")["tests"] if t["test_code"] == "K")
        self.assertEqual(k["result"]["value_text"], "4.6")

    def test_a_pdf_sent_as_encapsulated_data_is_stored_and_downloaded_as_sent(self):
        # The pathology system's ORU from the corpus: a small PDF in OBX-5 (ED, Base64).
        sample = CORPUS / "analyzers" / "hl7v251-oru-r01_pathology_ed-embedded-pdf-base64.hl7"
        expected = json.loads((sample.parent / (sample.name + ".expect.json")).read_text())
        ed = next(s for s in sample.read_bytes().decode().split("\r") if s.startswith("OBX|2|ED|"))
        data = ed.split("|")[5].split("^")[4]
        sender = f"IOPPATH{_mrn[0]}"
        instrument = {"name": f"Interop pathology {sender}", "protocol": "hl7", "sender": sender}
        added = api("POST", "/api/v1/instruments", instrument, key=ADMIN_KEY)
        api("POST", f"/api/v1/instruments/{added['id']}/codes", {"instrument_code": "PDF", "test_code": "GRAM"}, key=ADMIN_KEY)
        acc = received_specimen(["GRAM"])
        message = "\r".join([
            f"MSH|^~\\&|{sender}|PATH|CUVETTE|LAB|20261124120000||ORU^R01^ORU_R01|IOP-ED-1|P|2.5.1",
            "PID|1",
            f"OBR|1||{acc}|664-3^Gram stain^LN",
            f"OBX|1|ED|PDF^Report PDF^L||^application^pdf^Base64^{data}||||||F",
        ]) + "\r"
        ack = mllp_send(message)
        self.assertEqual(msa(ack)[1], "AA", ack)
        gram = next(t for t in api("GET", f"/api/v1/specimens/{acc}")["tests"] if t["test_code"] == "GRAM")
        self.assertEqual(gram["result"]["value"], "See attached PDF")
        attachment = gram["result"]["attachment"]
        self.assertEqual((attachment["media_type"], attachment["sha256"]), ("application/pdf", expected["ed_sha256"]))
        req = urllib.request.Request(URL + attachment["download_url"])
        req.add_header("Authorization", "Bearer " + KEY)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        self.assertEqual(hashlib.sha256(body).hexdigest(), expected["ed_sha256"])
        self.assertTrue(body.startswith(expected["results"][1]["ed"]["decoded_starts_with"].encode()))


class Orders(unittest.TestCase):
    def test_mllp_send_delivers_an_oml_and_gets_an_orl_with_the_accession(self):
        _mrn[0] += 1
        mrn = f"IOPOML{_mrn[0]}"
        oml = "\r".join([
            f"MSH|^~\\&|DEMOEHR|HOSP|CUVETTE|LAB|20261124120000||OML^O21^OML_O21|IOP-OML-{mrn}|P|2.5.1",
            f"PID|1||{mrn}^^^HOSP^MR||Orderly^Olga||19750812|F",
            "ORC|NW|PLC-77" + "|" * 10 + "^Doctor^Dana",  # ORC-12 ordering provider
            "OBR|1|PLC-77||2823-3^Potassium^LN",
        ]) + "\r"
        ack = mllp_send(oml)
        fields = msa(ack)
        self.assertEqual(fields[1], "AA", ack)
        self.assertIn("ORL^O22", ack)
        orc = next(s for s in ack.split("\r") if s.startswith("ORC|"))
        accession = orc.split("|")[3].split("^")[0]
        specimen = api("GET", f"/api/v1/specimens/{accession}")
        self.assertEqual(specimen["patient"]["mrn"], mrn)
        self.assertEqual(specimen["order"]["placer_number"], "PLC-77")
        self.assertEqual([t["test_code"] for t in specimen["tests"]], ["K"])

    def test_an_order_for_an_unknown_test_gets_AE(self):
        oml = "\r".join([
            "MSH|^~\\&|DEMOEHR|HOSP|CUVETTE|LAB|20261124120000||OML^O21^OML_O21|IOP-OML-BAD|P|2.5.1",
            "PID|1||IOPBAD1^^^HOSP^MR||Orderly^Otto||19750812|M",
            "ORC|NW|PLC-78" + "|" * 10 + "^Doctor^Dana",
            "OBR|1|PLC-78||99999-9^Nonexistent^LN",
        ]) + "\r"
        ack = mllp_send(oml)
        self.assertEqual(msa(ack)[1], "AE", ack)
        self.assertIn("ERR|", ack)


    def test_an_oml_with_a_culture_and_gram_stain_on_one_swab_gets_one_accession_and_a_valid_orl(self):
        _mrn[0] += 1
        mrn = f"IOPSPM{_mrn[0]}"
        spm = "SPM|{n}|SW" + mrn + "^||WND^Wound^HL70487" + "|" * 13 + "20261124071500+0000"
        oml = "\r".join([
            f"MSH|^~\\&|DEMOEHR|HOSP|CUVETTE|LAB|20261124120000||OML^O21^OML_O21|IOP-SPM-{mrn}|P|2.5.1",
            f"PID|1||{mrn}^^^HOSP^MR||Swabbed^Sam||19750812|M",
            "ORC|NW|PLC-81" + "|" * 10 + "^Doctor^Dana",
            "OBR|1|PLC-81||6462-6^Wound culture^LN",
            spm.format(n=1),
            "ORC|NW|PLC-82" + "|" * 10 + "^Doctor^Dana",
            "OBR|2|PLC-82||664-3^Gram stain^LN",
            spm.format(n=2),
        ]) + "\r"
        ack = mllp_send(oml)
        self.assertEqual(msa(ack)[1], "AA", ack)
        fillers = [s.split("|")[3].split("^")[0] for s in ack.split("\r") if s.startswith("ORC|")]
        self.assertEqual(len(fillers), 2, ack)
        self.assertEqual(fillers[0], fillers[1], "one swab, one accession")
        specimen = api("GET", f"/api/v1/specimens/{fillers[0]}")
        self.assertEqual(sorted(t["test_code"] for t in specimen["tests"]), ["GRAM", "WCX"])


class HostQuery(unittest.TestCase):
    def qbp(self, control_id, specimen):
        return "\r".join([
            f"MSH|^~\\&|DEMOCHEM|LAB|CUVETTE|LAB|20261124120000||QBP^Q11^QBP_Q11|{control_id}|P|2.5.1",
            f"QPD|WOS^Work Order Step^IHE_LABTF|T-{control_id}|{specimen}",
            "RCP|I||R",
        ]) + "\r"

    def test_a_qbp_q11_for_a_received_specimen_is_answered_rsp_k11_with_its_tests(self):
        acc = received_specimen(["K"])
        rsp = mllp_send(self.qbp("IOP-QBP-1", acc))
        self.assertIn("RSP^K11", rsp)
        self.assertEqual(msa(rsp)[1:3], ["AA", "IOP-QBP-1"], rsp)
        qak = next(s for s in rsp.split("\r") if s.startswith("QAK|")).split("|")
        self.assertEqual(qak[1:3], ["T-IOP-QBP-1", "OK"])
        rows = [s.split("|") for s in rsp.split("\r") if s.startswith("RDT|")]
        self.assertEqual([r[1] for r in rows], ["2823-3"], rsp)

    def test_a_qbp_q11_for_an_unknown_specimen_is_answered_no_data_found(self):
        rsp = mllp_send(self.qbp("IOP-QBP-2", "26-0000999-3"))
        qak = next(s for s in rsp.split("\r") if s.startswith("QAK|")).split("|")
        self.assertEqual(qak[2], "NF", rsp)


class Corpus(unittest.TestCase):
    def test_every_corpus_message_is_answered_as_its_sender_asked_and_none_stops_the_listener(self):
        files = sorted(CORPUS.glob("*.hl7"))
        self.assertGreater(len(files), 10)
        for path in files:
            with self.subTest(path.name):
                data = path.read_bytes()
                accept, application = ack_modes(data)
                acks = send_collecting(data)
                codes = [msa(a)[1] for a in acks]
                if not accept:
                    # Original mode: exactly one application acknowledgement.
                    self.assertEqual(len(codes), 1, codes)
                    self.assertIn(codes[0], ("AA", "AE", "AR"), acks)
                else:
                    # Enhanced mode: the accept and application acknowledgements the sender
                    # asked for in MSH-15 and MSH-16, and no others.
                    commits = [c for c in codes if c in ("CA", "CE", "CR")]
                    answers = [c for c in codes if c in ("AA", "AE", "AR")]
                    self.assertEqual(len(commits) + len(answers), len(codes), codes)
                    self.assertLessEqual(len(commits), 1, codes)
                    self.assertLessEqual(len(answers), 1, codes)
                    wanted_commit = {"AL": ("CA", "CE", "CR"), "NE": (), "ER": ("CE", "CR"), "SU": ("CA",)}
                    for c in commits:
                        self.assertIn(c, wanted_commit.get(accept, ("CA", "CE", "CR")), (accept, codes))
                    if accept == "AL":
                        self.assertEqual(len(commits), 1, codes)
                    wanted_answer = {"AL": ("AA", "AE", "AR"), "NE": (), "ER": ("AE", "AR"), "SU": ("AA",)}
                    for c in answers:
                        self.assertIn(c, wanted_answer.get(application, ("AA", "AE", "AR")), (application, codes))
                    if application == "AL" and commits != ["CR"]:
                        self.assertEqual(len(answers), 1, codes)
                for ack, code in zip(acks, codes):
                    if code not in ("AA", "CA"):
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


    def test_the_astm_package_client_aborting_mid_message_stores_nothing(self):
        from astm.client import Client
        import sqlite3

        acc = received_specimen(["TSH"])
        unit = api("GET", "/api/v1/catalog/tests/TSH")["definition"]["unit"]

        # Record by record (not bulk): the client's emitter stops after the result, so the
        # client ends the transfer with EOT and closes before the terminator record.
        def emitter():
            yield ["H", [[], ["", "&"]], None, None, ["DEMOIMMUNO", "1.0"], None, None, None, None, None, None, "P", None, "20261124121500"]
            yield ["P", "1"]
            yield ["O", "1", acc, None, [None, None, None, "TSH"]]
            yield ["R", "1", [None, None, None, "TSH"], "3.40", unit, None, None, None, "F"]

        client = Client(emitter, "127.0.0.1", ASTM_PORT, timeout=20)
        client.run(timeout=1)
        database = pathlib.Path(os.environ["CUVETTE_DATA"]) / "cuvette.sqlite3"
        deadline = time.time() + 20
        while True:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                logged = db.execute(
                    "SELECT outcome, detail, results, quarantine FROM interface_message WHERE accession = ? AND protocol = 'astm'",
                    (acc,),
                ).fetchall()
            if logged or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(len(logged), 1, logged)
        outcome, detail, results, quarantine = logged[0]
        self.assertEqual((outcome, results, quarantine), ("aborted", 0, None))
        self.assertIn("transfer aborted before the terminator record", detail)
        tsh = next(t for t in api("GET", f"/api/v1/specimens/{acc}")["tests"] if t["test_code"] == "TSH")
        self.assertIsNone(tsh["result"], "nothing from the incomplete message was stored")

    def test_cuvettes_sender_delivers_work_orders_to_the_astm_package_server(self):
        import threading

        from astm.server import BaseRecordsDispatcher, Server

        received = []

        class Keep(BaseRecordsDispatcher):
            def on_header(self, record):
                received.append(record)

            on_patient = on_order = on_terminator = on_unknown = on_header

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = Server(host="127.0.0.1", port=port, dispatcher=Keep)
        threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True).start()
        acc = received_specimen(["TSH", "FT4"])
        out = subprocess.run(
            [os.environ["CUVETTE_BIN"], "send-orders", "--data", os.environ["CUVETTE_DATA"], "--to", f"127.0.0.1:{port}", "--instrument", "DEMOIMMUNO", acc],
            capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        deadline = time.time() + 10
        while not any(r[0] == "L" for r in received) and time.time() < deadline:
            time.sleep(0.1)
        orders = [r for r in received if r[0] == "O"]
        self.assertEqual(len(orders), 1, received)
        self.assertEqual(orders[0][2], acc)
        codes = sorted(t[3] for t in orders[0][4]) if isinstance(orders[0][4][0], list) else [orders[0][4][3]]
        self.assertEqual(codes, ["FT4", "TSH"])

    def tearDown(self):
        # The astm package keeps every socket in one global map and its client loops until the
        # map is empty: a server left open would keep the next client waiting forever.
        from astm import asynclib

        for dispatcher in list(asynclib._SOCKET_MAP.values()) if hasattr(asynclib, "_SOCKET_MAP") else []:
            dispatcher.close()


EHR_PORT = int(os.environ.get("CUVETTE_EHR_PORT") or 0)


class ResultsOut(unittest.TestCase):
    def test_a_released_result_reaches_the_ehr_as_a_valid_oru(self):
        import threading

        frames = []
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", EHR_PORT))
        listener.listen()

        def ehr():
            conn, _ = listener.accept()
            buf = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\x1c\x0d" in buf:
                    frame, buf = buf.split(b"\x1c\x0d", 1)
                    message = frame.lstrip(b"\x0b").decode()
                    frames.append(message)
                    control = message.split("\r")[0].split("|")[9]
                    ack = f"MSH|^~\\&|EHR|HOSP|CUVETTE|LAB|20261124120000||ACK^R01^ACK|A{control}|P|2.5.1\rMSA|AA|{control}\r"
                    conn.sendall(b"\x0b" + ack.encode() + b"\x1c\x0d")

        threading.Thread(target=ehr, daemon=True).start()
        acc = received_specimen(["K"])
        saved = api("POST", f"/api/v1/specimens/{acc}/results", {"results": [{"test_code": "K", "value": "4.6"}]})
        test_id = saved["saved"][0]["ordered_test_id"]
        k = next(t for t in api("GET", f"/api/v1/specimens/{acc}")["tests"] if t["test_code"] == "K")
        outcome = api("POST", "/api/v1/release", {"tests": [{"ordered_test_id": test_id, "row_version": k["row_version"]}]})
        self.assertEqual(outcome["outcomes"][0]["outcome"], "released", json.dumps(outcome))
        # The demo lab autoverifies chemistry that instruments sent earlier in this suite, and
        # those results go to the EHR too: wait for the message about this specimen.
        deadline = time.time() + 30
        mine = lambda: [f for f in frames if f"|{acc}" in f]
        while not mine() and time.time() < deadline:
            time.sleep(0.2)
        self.assertTrue(mine(), f"the ORU for {acc} reached the EHR ({len(frames)} others did)")
        EMITTED.extend(frames)
        oru = mine()[0]
        self.assertIn("ORU^R01", oru)
        obx = [s for s in oru.split("\r") if s.startswith("OBX|")]
        self.assertEqual(len(obx), 1, oru)
        self.assertEqual(obx[0].split("|")[5], "4.6")
        self.assertEqual(obx[0].split("|")[11], "F")
        listener.close()


FHIR_KEY = os.environ.get("CUVETTE_FHIR_KEY", "")
FHIR_PATIENT_KEY = os.environ.get("CUVETTE_FHIR_PATIENT_KEY", "")

# The elements each US Core profile (STU 6.1+, hl7.fhir.us.core) marks Must Support in its
# differential, with those of the profile it derives from (US Core Observation Clinical Result
# for the laboratory Observation). Element paths as the profiles write them.
MUST_SUPPORT = {
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab": [
        "Observation.status", "Observation.category", "Observation.code", "Observation.subject",
        "Observation.encounter", "Observation.effective[x]", "Observation.performer",
        "Observation.value[x]", "Observation.dataAbsentReason", "Observation.interpretation",
        "Observation.specimen", "Observation.referenceRange", "Observation.meta.lastUpdated",
    ],
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab": [
        "DiagnosticReport.status", "DiagnosticReport.category", "DiagnosticReport.code",
        "DiagnosticReport.subject", "DiagnosticReport.encounter", "DiagnosticReport.effective[x]",
        "DiagnosticReport.issued", "DiagnosticReport.performer", "DiagnosticReport.resultsInterpreter",
        "DiagnosticReport.result", "DiagnosticReport.meta.lastUpdated",
    ],
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient": [
        "Patient.identifier.system", "Patient.identifier.value", "Patient.name.family",
        "Patient.name.given", "Patient.telecom", "Patient.birthDate", "Patient.address",
        "Patient.communication.language",
    ],
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-specimen": [
        "Specimen.identifier", "Specimen.accessionIdentifier", "Specimen.type", "Specimen.subject",
    ],
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest": [
        "ServiceRequest.status", "ServiceRequest.intent", "ServiceRequest.category",
        "ServiceRequest.code", "ServiceRequest.subject", "ServiceRequest.encounter",
        "ServiceRequest.occurrence[x]", "ServiceRequest.authoredOn", "ServiceRequest.requester",
    ],
}

# What the lab does not hold, so Must Support asks nothing of it ("if the data is present in
# the sending system"): encounters, an interpreter apart from the verifier, contact details,
# a requested time of service; a value or the reason it is absent, never both (obs-6).
NOT_HELD = {
    "Observation.encounter", "DiagnosticReport.encounter", "DiagnosticReport.resultsInterpreter",
    "Patient.telecom", "Patient.address", "Patient.communication.language",
    "ServiceRequest.encounter", "ServiceRequest.occurrence[x]",
    "Specimen.meta.lastUpdated", "Patient.meta.lastUpdated",
}

STATUSES = {
    "Observation": {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"},
    "DiagnosticReport": {"registered", "partial", "preliminary", "final", "amended", "corrected", "appended", "cancelled", "entered-in-error", "unknown"},
    "ServiceRequest": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
    "Specimen": {"available", "unavailable", "unsatisfactory", "entered-in-error"},
}


def fhir(path, key=None):
    """A FHIR GET as an EHR sends it: (status, body)."""
    req = urllib.request.Request(URL + path)
    req.add_header("Authorization", "Bearer " + (key or FHIR_KEY))
    req.add_header("Accept", "application/fhir+json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.headers["Content-Type"].startswith("application/fhir+json"), r.headers["Content-Type"]
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        assert e.headers["Content-Type"].startswith("application/fhir+json"), e.headers["Content-Type"]
        return e.code, json.loads(e.read())


def present(resource, path):
    """Whether the element at `path` (Type.a.b, with value[x] choices) has a value."""
    values = [resource]
    for step in path.split(".")[1:]:
        found = []
        for v in values:
            items = v if isinstance(v, list) else [v]
            for item in items:
                if not isinstance(item, dict):
                    continue
                if step.endswith("[x]"):
                    found += [val for k, val in item.items() if k.startswith(step[:-3]) and k != step[:-3]]
                elif step in item:
                    found.append(item[step])
        values = found
    return bool(values)


class Fhir(unittest.TestCase):
    """An EHR reading released results through the FHIR API, each answer validated with
    fhir.resources' R4B models and checked for US Core's Must Support elements."""

    SEEN = []

    def validate(self, body):
        from fhir.resources.R4B import get_fhir_model_class

        model = get_fhir_model_class(body["resourceType"])
        model.model_validate(body)
        kind = body["resourceType"]
        if kind == "Bundle":
            for entry in body.get("entry", []):
                self.validate(entry["resource"])
            return
        Fhir.SEEN.append(kind)
        if kind in STATUSES:
            self.assertIn(body["status"], STATUSES[kind], kind)
        for profile in body.get("meta", {}).get("profile", []):
            for path in MUST_SUPPORT[profile]:
                if path in NOT_HELD or path == f"{kind}.meta.lastUpdated" and kind not in ("Observation", "DiagnosticReport"):
                    continue
                if kind == "Observation" and path == "Observation.dataAbsentReason" and present(body, "Observation.value[x]"):
                    continue
                if kind == "Observation" and path == "Observation.value[x]" and present(body, "Observation.dataAbsentReason"):
                    continue
                if kind == "Observation" and path == "Observation.interpretation" and "referenceRange" not in body:
                    continue
                self.assertTrue(present(body, path), f"{path} missing from {json.dumps(body)}")

    def released(self):
        acc = received_specimen(["K", "NA", "CREAT"])
        values = [{"test_code": "K", "value": "5.9"}, {"test_code": "CREAT", "value": "<0.15"}]
        api("POST", f"/api/v1/specimens/{acc}/results", {"results": values})
        tests = api("GET", f"/api/v1/specimens/{acc}")["tests"]
        release = [{"ordered_test_id": t["ordered_test_id"], "row_version": t["row_version"]} for t in tests if t["test_code"] in ("K", "CREAT")]
        outcome = api("POST", "/api/v1/release", {"tests": release})
        self.assertTrue(all(o["outcome"] == "released" for o in outcome["outcomes"]), json.dumps(outcome))
        return acc

    def test_an_ehr_reads_released_observations_and_reports_that_validate_against_r4b_and_us_core(self):
        self.assertTrue(FHIR_KEY, "run.sh makes a key with system/*.read")
        acc = self.released()
        status, reports = fhir(f"/fhir/DiagnosticReport?identifier={acc}&_include=DiagnosticReport:result&_include=DiagnosticReport:patient")
        self.assertEqual(status, 200, reports)
        self.validate(reports)
        report = next(e["resource"] for e in reports["entry"] if e["search"]["mode"] == "match")
        self.assertEqual(report["status"], "partial")  # sodium is still open
        patient = report["subject"]["reference"].split("/")[1]
        status, observations = fhir(f"/fhir/Observation?patient={patient}&category=laboratory&_include=Observation:patient")
        self.assertEqual(status, 200, observations)
        self.validate(observations)
        found = {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in observations["entry"] if e["search"]["mode"] == "match"}
        self.assertEqual(sorted(found), ["2160-0", "2823-3"])
        self.assertEqual(found["2823-3"]["valueQuantity"]["code"], "mmol/L")
        self.assertEqual(found["2823-3"]["interpretation"][0]["coding"][0]["code"], "H")
        self.assertEqual(found["2160-0"]["valueQuantity"]["comparator"], "<")
        for path in (f"/fhir/Patient/{patient}", f"/fhir/Specimen?identifier={acc}", f"/fhir/ServiceRequest?identifier={acc}", f"/fhir/Patient?_id={patient}"):
            status, body = fhir(path)
            self.assertEqual(status, 200, body)
            self.validate(body)
        for oid in (o["id"] for o in found.values()):
            status, body = fhir(f"/fhir/Observation/{oid}")
            self.assertEqual(status, 200, body)
            self.validate(body)
        status, body = fhir(f"/fhir/DiagnosticReport/{report['id']}")
        self.validate(body)
        self.assertEqual(set(Fhir.SEEN), {"Patient", "ServiceRequest", "Specimen", "Observation", "DiagnosticReport"})

    def test_the_capability_statement_and_every_refusal_validate(self):
        status, cs = fhir("/fhir/metadata")
        self.assertEqual(status, 200)
        self.validate(cs)
        for path, code in (
            ("/fhir/Observation?colour=red", 400),
            ("/fhir/Observation?date=tomorrow", 400),
            ("/fhir/Encounter", 404),
            ("/fhir/Observation/999999999", 404),
        ):
            status, body = fhir(path)
            self.assertEqual(status, code, body)
            self.validate(body)
            self.assertTrue(body["issue"][0]["diagnostics"])
        if FHIR_PATIENT_KEY:
            status, body = fhir("/fhir/Observation", FHIR_PATIENT_KEY)
            self.assertEqual(status, 403, body)
            self.validate(body)


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
    for case in (Results, Orders, HostQuery, Corpus, Astm, ResultsOut, Fhir, Conformance):
        suite.addTests(loader.loadTestsFromTestCase(case))
    return suite


if __name__ == "__main__":
    unittest.main()
