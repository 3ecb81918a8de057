//! Parsing an ORU^R01 with 1, 10 and 100 OBX and reading every OBX-5, as a result interface
//! does for each message it receives. Throughput is in bytes, so messages/s = (bytes/s) /
//! (message length), printed once per size.
//!
//! `cargo bench -p cuvette-hl7 --bench parse`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cuvette_hl7::{FieldValue, Message, MessageBuilder, SegmentBuilder};

/// A realistic result message: MSH, PID, PV1, ORC, OBR and `obx` OBX (NM values with LOINC
/// codes, UCUM units, reference ranges, flags and timestamps), one NTE with an escape.
fn oru_r01(obx: usize) -> Vec<u8> {
    let mut message = MessageBuilder::new()
        .segment(
            SegmentBuilder::new("MSH")
                .field(3, FieldValue::components(["ANALYZER", "1.2.3.4", "ISO"]))
                .field(4, "CORE LAB")
                .field(5, "CUVETTE")
                .field(6, "LAB")
                .field(7, "20240501120000+0200")
                .field(9, FieldValue::components(["ORU", "R01", "ORU_R01"]))
                .field(10, "MSG000000123456")
                .field(11, "P")
                .field(12, "2.5.1")
                .field(15, "AL")
                .field(16, "NE")
                .field(18, "UNICODE UTF-8"),
        )
        .segment(
            SegmentBuilder::new("PID")
                .field(1, "1")
                .field(3, FieldValue::components(["123456789", "", "", "HOSP", "MR"]))
                .field(5, FieldValue::components(["DOE", "JANE", "Q"]))
                .field(7, "19800101")
                .field(8, "F"),
        )
        .segment(SegmentBuilder::new("PV1").field(1, "1").field(2, "O"))
        .segment(
            SegmentBuilder::new("ORC").field(1, "RE").field(2, "ORD123").field(3, "ACC2024000123"),
        )
        .segment(
            SegmentBuilder::new("OBR")
                .field(1, "1")
                .field(2, "ORD123")
                .field(3, "ACC2024000123")
                .field(4, FieldValue::components(["58410-2", "CBC panel", "LN"]))
                .field(7, "20240501110000+0200")
                .field(25, "F"),
        );
    for i in 1..=obx {
        message.push(
            SegmentBuilder::new("OBX")
                .field(1, i.to_string())
                .field(2, "NM")
                .field(
                    3,
                    FieldValue::components(["718-7", "Hemoglobin [Mass/volume] in Blood", "LN"]),
                )
                .field(5, format!("{}.{}", 100 + i % 80, i % 10))
                .field(6, FieldValue::components(["g/L", "gram per liter", "UCUM"]))
                .field(7, "120-160")
                .field(8, if i % 7 == 0 { "L" } else { "N" })
                .field(11, "F")
                .field(14, "20240501113000+0200")
                .field(19, "20240501114500+0200"),
        );
    }
    message.push(SegmentBuilder::new("NTE").field(1, "1").field(3, "Hemolysed & recollected"));
    message.finish().expect("the benchmark message is valid")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_oru_r01_read_every_obx5");
    for obx in [1, 10, 100] {
        let bytes = oru_r01(obx);
        eprintln!("ORU^R01 with {obx} OBX: {} bytes", bytes.len());
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(obx), &bytes, |b, bytes| {
            b.iter(|| {
                let message = Message::parse(black_box(bytes)).expect("parses");
                let mut total = 0;
                for obx in message.segments_with_id("OBX") {
                    total += obx.field(5).decoded().len();
                }
                black_box(total)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
