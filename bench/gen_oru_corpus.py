#!/usr/bin/env python3
"""Writes a corpus of realistic HL7 v2.5.1 ORU^R01 result messages, one file per message.

Usage: gen_oru_corpus.py OUT_DIR [COUNT] [SEED]

Standard library only; the same COUNT and SEED always give the same bytes. Messages rotate
through 1, 10 and 100 OBX (a single test, a panel, a long cumulative/analyser batch), so a
third of the messages have each size. Each message has MSH, PID, PV1, ORC, OBR, the OBX and,
on some, NTE comments. OBX-5 values are a mix of the value types laboratories send:

  NM   numbers with UCUM units, reference ranges and H/L/HH/LL/N flags (about 70%)
  SN   structured numbers: "<^0.01", ">^100000000", "^1^:^160" (about 10%)
  CWE  coded answers: "260385009^Negative^SCT" (about 10%)
  ST   text with escape sequences (\\T\\ for &, \\S\\ for ^, \\F\\ for |, \\.br\\) and
       repetitions ("Clear~Yellow") (about 10%)

Segments end with CR, as on the wire; no MLLP framing.
"""

import os
import random
import sys

# (code, name, unit, low, high, decimals): LOINC codes with their usual units.
NUMERIC = [
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0),
    ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29, 0),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 6, 20, 0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.59, 1.04, 2),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 0),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 1),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 7, 56, 0),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 10, 40, 0),
    ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 44, 147, 0),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.1, 1.2, 1),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.5, 5.0, 1),
    ("2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/dL", 6.0, 8.3, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11.0, 1),
    ("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.2, 5.4, 2),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 16.0, 1),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36, 46, 1),
    ("787-2", "MCV [Entitic volume] by Automated count", "fL", 80, 100, 1),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 0),
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, 2),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 1),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0, 5, 1),
    ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted by Creatinine-based formula (CKD-EPI 2021)", "mL/min/{1.73_m2}", 90, 120, 0),
]

# (code, name, unit, value choices as SN components)
STRUCTURED = [
    ("89579-7", "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method", "ng/L", ["<^3", "^12", "^57", ">^50000"]),
    ("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma", "ng/mL", ["<^0.1", "^2.4", "^11.8"]),
    ("11011-4", "Hepatitis C virus RNA [Units/volume] (viral load) in Serum or Plasma by NAA with probe detection", "[IU]/mL", ["<^15", "^4820", ">^100000000"]),
    ("5048-4", "Nuclear Ab [Titer] in Serum by Immunofluorescence", "{titer}", ["<^1^:^40", "^1^:^160", "^1^:^1280"]),
]

# (code, name, answers as CWE "code^text^system")
CODED = [
    ("25428-4", "Glucose [Presence] in Urine by Test strip", ["260385009^Negative^SCT", "260347006^+^SCT", "260348001^++^SCT"]),
    ("5794-3", "Hemoglobin [Presence] in Urine by Test strip", ["260385009^Negative^SCT", "260408008^Weakly positive^SCT"]),
    ("600-7", "Bacteria identified in Blood by Culture", ["264868006^No growth^SCT", "3092008^Staphylococcus aureus^SCT", "112283007^Escherichia coli^SCT"]),
    ("882-1", "ABO and Rh group [Type] in Blood", ["278149003^Blood group A Rh(D) positive^SCT", "278152006^Blood group A Rh(D) negative^SCT", "278153001^Blood group O Rh(D) positive^SCT"]),
]

# (code, name, texts: already escaped as they travel in ER7)
TEXT = [
    ("5767-9", "Appearance of Urine", ["Clear~Yellow", "Cloudy~Amber", "Turbid~Red"]),
    ("33882-2", "Comment on specimen", [
        "Specimen hemolysed \\T\\ result may be affected",
        "Repeat requested\\.br\\Called to ward 4B \\T\\ read back",
        "Ratio A\\S\\B reported as text",
        "Lipemic \\F\\ icteric index above limit",
    ]),
    ("8251-1", "Service comment", ["Result verified by repeat analysis", "Sample received at 18 \\T\\ 20 C"]),
]

PANELS = [
    ("24321-2", "Basic metabolic 2000 panel - Serum or Plasma"),
    ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"),
    ("58410-2", "CBC panel - Blood by Automated count"),
    ("24356-8", "Urinalysis complete panel in Urine"),
]

FAMILY = ["Garcia", "O'Brien", "Nguyen", "Müller", "Smith", "Kowalski", "Dubois", "Rossi", "Yamamoto", "Okafor"]
GIVEN = ["Maria", "Sean", "Linh", "Jürgen", "Anna", "Piotr", "Chloé", "Luca", "Haruto", "Chidi"]
ANALYZERS = [("COBAS8000", "1.2.840.114350.1.13.1", "ISO"), ("ALINITY_C", "2.16.840.1.113883.3.1", "ISO"), ("XN1000", "1.3.6.1.4.1.9999.1", "ISO")]


def ts(rng, day, hour):
    return f"202405{day:02d}{hour:02d}{rng.randrange(60):02d}{rng.randrange(60):02d}+0200"


def numeric(rng, spec):
    code, name, unit, low, high, decimals = spec
    span = high - low
    r = rng.random()
    if r < 0.8:
        v = low + rng.random() * span
        flag = "N"
    elif r < 0.9:
        v = high + rng.random() * span * 0.5
        flag = "H"
    elif r < 0.97:
        v = max(0.0, low - rng.random() * span * 0.3)
        flag = "L"
    else:
        v = high + span * (1 + rng.random() * 3)
        flag = "HH"
    value = f"{v:.{decimals}f}"
    rng_text = f"{low}-{high}"
    return "NM", f"{code}^{name}^LN", value, f"{unit}^{unit}^UCUM", rng_text, flag


def structured(rng, spec):
    code, name, unit, values = spec
    value = rng.choice(values)
    flag = "H" if value.startswith(">") else ("N" if value.startswith("<") else rng.choice(["N", "A"]))
    return "SN", f"{code}^{name}^LN", value, f"{unit}^{unit}^UCUM", "", flag


def coded(rng, spec):
    code, name, answers = spec
    value = rng.choice(answers)
    flag = "N" if "Negative" in value or "No growth" in value else "A"
    return "CWE", f"{code}^{name}^LN", value, "", "", flag


def text(rng, spec):
    code, name, texts = spec
    return "ST", f"{code}^{name}^LN", rng.choice(texts), "", "", ""


def observation(rng):
    r = rng.random()
    if r < 0.7:
        return numeric(rng, rng.choice(NUMERIC))
    if r < 0.8:
        return structured(rng, rng.choice(STRUCTURED))
    if r < 0.9:
        return coded(rng, rng.choice(CODED))
    return text(rng, rng.choice(TEXT))


def message(rng, n, obx_count):
    day = 1 + n % 28
    app, oid, kind = ANALYZERS[n % len(ANALYZERS)]
    control = f"MSG{n:08d}"
    accession = f"24{n:08d}"
    mrn = f"{100000 + n * 7:07d}"
    family, given = rng.choice(FAMILY), rng.choice(GIVEN)
    birth = f"19{rng.randrange(30, 99)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
    sex = rng.choice("FM")
    panel_code, panel_name = PANELS[n % len(PANELS)]
    collected = ts(rng, day, 7)
    received = ts(rng, day, 8)
    resulted = ts(rng, day, 9)
    segments = [
        f"MSH|^~\\&|{app}^{oid}^{kind}|CORE LAB^1.2.3.4^ISO|CUVETTE|LAB|{resulted}||ORU^R01^ORU_R01|{control}|P|2.5.1|||AL|NE||UNICODE UTF-8",
        f"PID|1||{mrn}^^^HOSP^MR||{family}^{given}^||{birth}|{sex}|||12 Harbour Rd^^Springfield^^01101",
        f"PV1|1|O|4B^412^1^HOSP||||1234^Carter^Ada^^^Dr",
        f"ORC|RE|ORD{n:07d}|{accession}||CM",
        f"OBR|1|ORD{n:07d}|{accession}|{panel_code}^{panel_name}^LN|||{collected}|||||||{received}||1234^Carter^Ada^^^Dr||||||{resulted}|||F",
    ]
    for i in range(1, obx_count + 1):
        vtype, ident, value, unit, ref, flag = observation(rng)
        segments.append(
            f"OBX|{i}|{vtype}|{ident}||{value}|{unit}|{ref}|{flag}|||F|||{collected}||||{app}|{resulted}"
        )
        if rng.random() < 0.05:
            segments.append(f"NTE|1|L|Checked against previous result \\T\\ delta within limits")
    if rng.random() < 0.3:
        segments.append("NTE|1|L|Hemolysed \\T\\ recollected\\.br\\Reported by the core laboratory")
    return ("\r".join(segments) + "\r").encode("utf-8")


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 20240501
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    sizes = [1, 10, 100]
    total = 0
    for n in range(count):
        data = message(rng, n, sizes[n % 3])
        total += len(data)
        with open(os.path.join(out, f"oru-{n:05d}.hl7"), "wb") as f:
            f.write(data)
    print(f"wrote {count} ORU^R01 messages ({total} bytes) to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
