//! LIS02-A2 message fixtures: every file in `test_data/ok` parses into the records its
//! `.expected` file lists, every file in `test_data/err` fails with the error its `.expected`
//! file names; then the key values an LIS reads, file by file.

use std::fmt::Write as _;

use cuvette_astm::records::{Charset, Field, View};
use cuvette_astm::{Message, RecordType};

use crate::support::{check_expected, data_dir, inputs, show};

#[test]
fn ok_fixtures_parse_as_expected() {
    for path in inputs("ok", "astm") {
        let text = std::fs::read(&path).unwrap();
        let messages =
            Message::parse_all(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check_expected(&path, &render(&messages));
    }
}

#[test]
fn err_fixtures_fail_as_expected() {
    for path in inputs("err", "astm") {
        let text = std::fs::read(&path).unwrap();
        let error = match Message::parse_all(&text) {
            Ok(messages) => panic!("{} parsed: {}", path.display(), render(&messages)),
            Err(error) => error,
        };
        check_expected(&path, &format!("{error}\n{error:?}\n"));
    }
}

/// One line per record with the fields an LIS reads, values decoded (escapes resolved) and
/// shown byte for byte; then the order groups.
fn render(messages: &[Message]) -> String {
    let mut out = String::new();
    for (index, message) in messages.iter().enumerate() {
        let d = message.delimiters();
        let delimiters = [d.field, d.repeat, d.component, d.escape];
        writeln!(out, "message {} delimiters {}", index + 1, show(&delimiters)).unwrap();
        for record in message.records() {
            let line = match record.view() {
                View::Header(h) => format!(
                    "H control_id={} sender={} processing={} version={} timestamp={}",
                    q(h.message_control_id()),
                    q(h.sender()),
                    q(h.processing_id()),
                    q(h.version()),
                    q(h.timestamp()),
                ),
                View::Patient(p) => format!(
                    "P seq={} practice_id={} lab_id={} id3={} name={} birth={} sex={} physician={}",
                    q(p.sequence()),
                    q(p.practice_patient_id()),
                    q(p.laboratory_patient_id()),
                    q(p.patient_id_3()),
                    q(p.name()),
                    q(p.birth_date()),
                    q(p.sex()),
                    q(p.physician()),
                ),
                View::Order(o) => format!(
                    "O seq={} specimen=\"{}\" instrument_specimen={} tests=[{}] priority={} \
                     action={} report_type={}",
                    q(o.sequence()),
                    show(&o.specimen_id().decode()),
                    q(o.instrument_specimen_id()),
                    o.test_ids()
                        .map(|t| format!("\"{}\"", show(&t.code().decode())))
                        .collect::<Vec<_>>()
                        .join(", "),
                    q(o.priority()),
                    q(o.action_code()),
                    q(o.report_type()),
                ),
                View::Result(r) => format!(
                    "R seq={} test=\"{}\" test_id={} value={} units={} range={} flags=[{}] \
                     status={} operator={} started={} completed={} instrument={}",
                    q(r.sequence()),
                    show(&r.test_id().code().decode()),
                    q(r.universal_test_id()),
                    r.value()
                        .components()
                        .find(|c| !c.is_empty())
                        .map_or("none".to_string(), |c| format!("\"{}\"", show(&c.decode()))),
                    q(r.units()),
                    q(r.reference_range()),
                    r.abnormal_flags()
                        .map(|f| format!("\"{}\"", show(&f.decode())))
                        .collect::<Vec<_>>()
                        .join(", "),
                    q(r.status()),
                    q(r.operator()),
                    q(r.started_at()),
                    q(r.completed_at()),
                    q(r.instrument()),
                ),
                View::Comment(c) => format!(
                    "C seq={} source={} text={} type={}",
                    q(c.sequence()),
                    q(c.source()),
                    q(c.text()),
                    q(c.comment_type()),
                ),
                View::Query(query) => format!(
                    "Q seq={} specimens=[{}] tests={} status={}",
                    q(query.sequence()),
                    query
                        .specimen_ids()
                        .map(|s| format!("\"{}\"", show(&s.decode())))
                        .collect::<Vec<_>>()
                        .join(", "),
                    q(query.universal_test_id()),
                    q(query.status()),
                ),
                View::Terminator(l) => format!("L seq={} code={}", q(l.sequence()), q(l.code())),
                _ => format!("{} raw=\"{}\"", record.kind(), show(record.as_bytes())),
            };
            out.push_str(&line);
            out.push('\n');
        }
        for group in message.order_groups() {
            writeln!(
                out,
                "group specimen=\"{}\" patient={} results={} order_comments={} result_comments={}",
                show(&group.order.specimen_id().decode()),
                group.patient.map_or("none".to_string(), |p| q(p.sequence())),
                group.results.len(),
                group.comments.len(),
                group.results.iter().map(|r| r.comments.len()).sum::<usize>(),
            )
            .unwrap();
        }
        writeln!(out, "terminated={}", message.terminator().is_some()).unwrap();
    }
    out
}

/// A field, escapes resolved, quoted.
fn q(field: Field<'_>) -> String {
    format!("\"{}\"", show(&field.decode()))
}

fn parse(name: &str) -> Message {
    let text = std::fs::read(data_dir().join("ok").join(name)).unwrap();
    Message::parse(&text).unwrap()
}

#[test]
fn cepheid_quantified_viral_load() {
    let message = parse("astm-e1394_cepheid-genexpert_hivvl-quantified.astm");
    // H|@^\ — repeat @, component ^, escape \ (LIS02-A2 §6.2: read them from the header).
    let d = message.delimiters();
    assert_eq!((d.field, d.repeat, d.component, d.escape), (b'|', b'@', b'^', b'\\'));
    assert_eq!(message.header().version().text(), "1394-97");
    let order = message.orders().next().unwrap();
    assert_eq!(order.specimen_id().text(), "HIV-1 1E3cp");
    assert_eq!(order.test_ids().map(|t| t.code().text()).collect::<Vec<_>>(), ["HIVVL"]);
    let result = message.results().next().unwrap();
    assert_eq!(result.test_id().code().text(), "HIVVL");
    // The quantity is in component 2 of R-4: `^1009.64`.
    assert_eq!(result.value().component(1).text(), "");
    assert_eq!(result.value().component(2).text(), "1009.64");
    assert_eq!(result.value_text().as_deref(), Some("1009.64"));
    assert_eq!(result.units().text(), "copies/mL");
    assert_eq!(result.reference_range().text(), "40.00 to 10000000.00");
    assert_eq!(result.abnormal_flags().map(|f| f.text()).collect::<Vec<_>>(), ["N"]);
    assert_eq!(result.status().text(), "F");
    assert_eq!(result.completed_at().text(), "20221115084008");
    assert_eq!(result.instrument().component(1).text(), "MSEDGEWIN10");
    assert_eq!(message.results().count(), 14);
    assert_eq!(message.terminator().unwrap().code().text(), "N");
}

#[test]
fn cepheid_flags_below_and_above_range() {
    for (name, flag) in [
        ("astm-e1394_cepheid-genexpert_hivvl-below-40-lt-flag.astm", "<"),
        ("astm-e1394_cepheid-genexpert_hivvl-above-1e7-gt-flag.astm", ">"),
    ] {
        let message = parse(name);
        let result = message.results().next().unwrap();
        assert_eq!(result.value_text().as_deref(), Some("DETECTED"), "{name}");
        assert_eq!(result.abnormal_flags().map(|f| f.text()).collect::<Vec<_>>(), [flag]);
        // The LOG result has an empty value: `^`.
        let log = message.results().nth(1).unwrap();
        assert_eq!(log.test_id().component(8).text(), "LOG");
        assert_eq!(log.value_text(), None);
    }
}

#[test]
fn cepheid_error_comments_follow_their_results() {
    let message = parse("astm-e1394_cepheid-genexpert_hivvl-error-comment-records.astm");
    let groups = message.order_groups();
    assert_eq!(groups.len(), 1);
    let results = &groups[0].results;
    assert_eq!(results[0].result.value_text().as_deref(), Some("ERROR"));
    assert_eq!(results[0].result.abnormal_flags().next().unwrap().text(), "A");
    assert_eq!(results[0].comments.len(), 1);
    assert_eq!(results[1].comments.len(), 1);
    assert!(results[2..].iter().all(|r| r.comments.is_empty()));
    let comment = results[0].comments[0];
    assert_eq!(comment.source().text(), "I");
    assert_eq!(comment.text().component(2).text(), "2097");
    assert_eq!(
        comment.text().component(4).text(),
        "Error 2097: Assay-Specific Termination Error #2: 47, 8, 1, 0"
    );
    assert_eq!(comment.comment_type().text(), "N");
}

#[test]
fn cepheid_multiplex_panel() {
    let message = parse("astm-e1394_cepheid-genexpert_cov-flu-rsv-all-positive.astm");
    assert_eq!(message.results().count(), 31);
    let first = message.results().next().unwrap();
    let test = first.test_id();
    assert_eq!(test.component(2).text(), "COVFLURSVPLUS");
    assert_eq!(test.code().text(), "SARSCOV2");
    assert_eq!(test.component(7).text(), "SARS-CoV-2");
    assert_eq!(first.value_text().as_deref(), Some("POSITIVE"));
    let ct = message.results().nth(2).unwrap();
    assert_eq!(ct.test_id().component(8).text(), "Ct");
    assert_eq!(ct.value_text().as_deref(), Some("30.6"));
    // Padding is data: kept as sent.
    let rsv = message.results().nth(24).unwrap();
    assert_eq!(rsv.operator().text(), " John Doe ");
}

#[test]
fn senaite_repeated_tests_and_two_patients() {
    let message = parse("astm-lis2a2_senaite-lis2a_example-01.astm");
    let order = message.orders().next().unwrap();
    assert_eq!(order.specimen_id().text(), "927529");
    assert_eq!(order.test_ids().map(|t| t.code().text()).collect::<Vec<_>>(), ["A1", "A2"]);
    let values: Vec<_> = message.results().map(|r| r.value_text().unwrap()).collect();
    assert_eq!(values, ["0.295", "0.312"]);
    // The example's timestamp sits in R-12, date and time the test started.
    assert_eq!(message.results().next().unwrap().started_at().text(), "19890327132247");

    let message = parse("astm-lis2a2_senaite-lis2a_example-02-two-patients.astm");
    let groups = message.order_groups();
    let specimens: Vec<_> = groups.iter().map(|g| g.order.specimen_id().text()).collect();
    assert_eq!(specimens, ["927529", "927533"]);
    let patients: Vec<_> = groups.iter().map(|g| g.patient.unwrap().sequence().text()).collect();
    assert_eq!(patients, ["1", "2"]);
    assert!(groups.iter().all(|g| g.results.len() == 2));
}

#[test]
fn ortho_windows_1252_bytes_are_kept() {
    let message = parse("astm-lis2a_twgenaux_ortho-vision-abo-rh-windows1252.astm");
    let patient = message.patients().next().unwrap();
    let last_name = patient.name().component(1);
    assert_eq!(last_name.raw(), b"\x8aC\x8e\xd0");
    assert_eq!(last_name.text_as(Charset::Windows1252), "ŠCŽÐ");
    assert_eq!(patient.name().component(2).text(), "Bobby");
    // A bare `L`: the message is terminated, with no termination code.
    let terminator = message.terminator().unwrap();
    assert!(terminator.code().is_empty());
    let order = message.orders().next().unwrap();
    assert_eq!(order.specimen_id().text(), "SID999");
    // O-5 without the `^^^` prefix: the code is component 1.
    assert_eq!(order.test_ids().map(|t| t.code().text()).collect::<Vec<_>>(), ["ABO-D"]);
    assert_eq!(order.report_type().text(), "F");
    let results: Vec<_> = message
        .results()
        .map(|r| (r.test_id().code().text(), r.value_text().unwrap(), r.instrument().text()))
        .collect();
    assert_eq!(
        results,
        [
            ("ABO".to_string(), "A".to_string(), "J number".to_string()),
            ("Rh".to_string(), "NEG".to_string(), "J number".to_string())
        ]
    );
}

#[test]
fn ortho_components_physician_and_status() {
    let message = parse("astm-lis2a_twgenaux_ortho-vision-abo-rh-msg1.astm");
    assert_eq!(message.header().sender().component(2).text(), "VISION");
    let patient = message.patients().next().unwrap();
    let ids: Vec<_> = patient.patient_id_3().components().map(|c| c.text()).collect();
    assert_eq!(ids, ["NID123456", "MID123456", "OID123456"]);
    assert_eq!(patient.physician().component(2).text(), "Kildare");
    let result = message.results().next().unwrap();
    assert_eq!(result.status().text(), "R");
    assert_eq!(result.instrument().text(), "J60009999");
    assert_eq!(result.completed_at().text(), "20210309142229");
}

#[test]
fn host_query_names_its_specimens() {
    let message = parse("cuvette_host-query-two-specimens.astm");
    let query = message.queries().next().unwrap();
    let specimens: Vec<_> = query.specimen_ids().map(|s| s.text()).collect();
    assert_eq!(specimens, ["SID123", "SID124"]);
    assert_eq!(query.universal_test_id().component(4).text(), "ALL");
    assert_eq!(query.status().text(), "O");
}

#[test]
fn every_record_type_is_recognised() {
    let text = std::fs::read(data_dir().join("ok/cuvette_escapes-crlf-two-messages.astm")).unwrap();
    let messages = Message::parse_all(&text).unwrap();
    let kinds: Vec<_> = messages[0].records().iter().map(|r| r.kind()).collect();
    assert_eq!(
        kinds,
        [
            RecordType::Header,
            RecordType::Patient,
            RecordType::Order,
            RecordType::Result,
            RecordType::Comment,
            RecordType::Manufacturer,
            RecordType::Terminator
        ]
    );
    // `&S&` is a component delimiter inside a component: it does not split.
    let patient = messages[0].patients().next().unwrap();
    assert_eq!(patient.name().component(1).text(), "Smith^Jones");
    assert_eq!(patient.name().component(2).text(), "Ann");
    assert_eq!(patient.practice_patient_id().text(), "MRN|1");
    let comment = messages[0].comments().next().unwrap();
    assert_eq!(comment.text().text(), "line\r\ntwo");
    // The second message escapes with `\`: `\R\` is its repeat delimiter `@`.
    assert_eq!(messages[1].results().next().unwrap().value().text(), "a@b");
}
