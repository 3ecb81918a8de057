//! A report an instrument sends as a file (HL7 OBX-2 ED, Base64) over the MLLP listener: the
//! microbiology system's Gram stain report as a PDF, its Base64 broken into lines the way
//! analyzers write it. Stored with the result, byte for byte, listed on the report and
//! downloaded by signed-in staff, each download audited; too large or not Base64, it is
//! refused at OBX-5 and waits in the quarantine, nothing stored.

use axum::http::{Method, StatusCode, header};
use cuvette_app::records::{AuditFilter, Direction, MessageFilter};
use cuvette_app::{Actor, LabConfig, RegisterPatient, Release};
use cuvette_domain::Role as Staff;
use cuvette_domain::audit::AuditAction;
use cuvette_domain::workflow::TestStatus;
use cuvette_hl7::Message;

use crate::support::{App, app, app_with, send_mllp};

/// A one-page PDF as a microscopy workstation writes it: a catalog, a page, a font and a
/// content stream, the binary comment line PDF writers put after the header, and a
/// cross-reference table whose offsets are the objects' own.
fn gram_stain_pdf() -> Vec<u8> {
    let text = "BT /F1 11 Tf 56 780 Td (Gram stain, wound swab: Gram-positive cocci in clusters, many; no yeast seen.) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
    ];
    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        table.push_str(&format!("{offset:010} 00000 n \n"));
    }
    pdf.extend_from_slice(table.as_bytes());
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// RFC 4648 Base64, padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}

/// Base64 in lines of 76 characters joined by CR LF written as an HL7 escape sequence
/// (`\X0D0A\`), as analyzers send a file too long for one line.
fn wrapped(base64: &str) -> String {
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(76)
        .map(|l| std::str::from_utf8(l).expect("Base64 is ASCII"))
        .collect();
    lines.join("\\X0D0A\\")
}

/// The microbiology system's ORU^R01 with the report as OBX-5 of type ED.
fn gram_report_oru(control_id: &str, accession: &str, data: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|MICROSYS|MICRO LAB|CUVETTE|LAB|20261124120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1|||||UNICODE UTF-8\r\
         PID|1||M3302^^^HOSP^MR||Okafor^Ada||19740305|F\r\
         OBR|1||{accession}|664-3^Gram stain^LN|||20261124110000\r\
         OBX|1|ED|GRAM^Gram stain report^L||MICROSYS^application^pdf^Base64^{data}||||||F\r"
    )
    .into_bytes()
}

/// A received wound swab with a Gram stain ordered, and the microbiology system registered:
/// (patient id, accession).
async fn gram_stain_received(app: &App) -> (i64, String) {
    let lab = &app.lab;
    let supervisor = app.sign_in(Staff::Supervisor, "micro").await.actor;
    let id =
        lab.add_instrument(&supervisor, "Microbiology system", "hl7", "MICROSYS").await.unwrap();
    lab.map_test_code(&supervisor, id, "GRAM", "GRAM", "").await.unwrap();
    let patient = RegisterPatient {
        mrn: "M3302".into(),
        family_name: "Okafor".into(),
        given_name: "Ada".into(),
        birth_date: "1974-03-05".into(),
        sex: "F".into(),
    };
    app.a_received_specimen("micro", patient, "Dr. L. Ferreira", &["GRAM"]).await
}

/// The acknowledgement's ERR segment as sent.
fn err_segment(ack: &Message<'_>) -> String {
    let err = ack.segments().find(|s| s.id() == b"ERR").expect("an ERR segment");
    String::from_utf8(err.raw().to_vec()).unwrap()
}

#[tokio::test]
async fn a_pdf_report_sent_as_encapsulated_data_is_stored_with_the_result_and_downloaded_byte_for_byte()
 {
    let app = app().await;
    let (patient_id, accession) = gram_stain_received(&app).await;
    let pdf = gram_stain_pdf();
    let data = wrapped(&base64(&pdf));
    assert!(data.contains("\\X0D0A\\"), "the Base64 is broken into lines");
    let message = gram_report_oru("GRAM-PDF-1", &accession, &data);

    let ack = send_mllp(&app, &message).await;
    assert_eq!(ack.get("MSA-1").unwrap().text(), "AA");

    // The result says where its value is; the file is stored with that version.
    let view = app.lab.specimen_view(&Actor::system(), &accession).await.unwrap();
    let gram = view.tests.iter().find(|t| t.item.test.test_code == "GRAM").unwrap();
    let stored = gram.versions.last().unwrap();
    assert_eq!(stored.value_text, "See attached PDF");
    let file = gram.attachment_of(stored).expect("the report is attached to the result");
    assert_eq!(
        (file.name.as_str(), file.media_type.as_str(), file.size),
        ("Gram stain report", "application/pdf", pdf.len() as i64)
    );

    // The raw message log keeps the message as it came.
    let filter = MessageFilter { direction: Some(Direction::In), ..Default::default() };
    let logged = app.lab.message_log(&Actor::system(), &filter).await.unwrap();
    assert_eq!(logged[0].outcome.code(), "accepted");
    assert_eq!(logged[0].raw, message);

    // The JSON result carries the file and where to download it.
    let technologist = app.sign_in(Staff::Technologist, "micro").await;
    let json =
        app.api(&technologist, Method::GET, &format!("/api/v1/specimens/{accession}"), None).await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    let result = &json.json()["tests"][0]["result"];
    assert_eq!(result["value"], "See attached PDF");
    let attachment = &result["attachment"];
    assert_eq!(attachment["media_type"], "application/pdf");
    assert_eq!(attachment["size"], pdf.len());
    assert_eq!(attachment["sha256"], file.sha256.as_str());
    let url = attachment["download_url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/results/attachments/{}", file.id));

    // The technologist opens the file from the results page before verifying it.
    let bench = app.get(&technologist, &format!("/specimens/{accession}/results")).await;
    assert_eq!(bench.status, StatusCode::OK);
    assert!(bench.body.contains(&format!("<a href=\"{url}\" download>Gram stain report</a>")));

    // Released, the report lists the file with its type and size, linked.
    let released = app
        .lab
        .release(
            &technologist.actor,
            &[(gram.item.test.id, gram.item.test.row_version)],
            TestStatus::Final,
        )
        .await
        .unwrap();
    assert!(matches!(released[..], [Release::Released { .. }]), "{released:?}");
    let report = app.get(&technologist, &format!("/patients/{patient_id}/report")).await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(report.body.contains(&format!("<a href=\"{url}\" download>Gram stain report</a>")));
    assert!(report.body.contains(&format!("(application/pdf, {} bytes)", pdf.len())));
    let (status, pdf_report) =
        app.get_bytes(&technologist, &format!("/patients/{patient_id}/report.pdf")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pdf_report.starts_with(b"%PDF"));

    // The download is the instrument's file, byte for byte, as a download, and audited.
    let (status, headers, bytes) = app.get_file(&technologist, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, pdf, "exactly the bytes the instrument sent");
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"{accession}-GRAM-v1.pdf\"").as_str()
    );
    let auditor = app.sign_in(Staff::Supervisor, "audit").await.actor;
    let filter =
        AuditFilter { action: Some(AuditAction::ResultAttachmentView), ..Default::default() };
    let events = app.lab.audit_events(&auditor, &filter).await.unwrap();
    assert_eq!(events.len(), 1, "one download, one view recorded");
    let event = &events[0];
    assert_eq!(
        (event.actor.as_str(), event.entity.as_str(), event.patient_id),
        (technologist.actor.name.as_str(), "result", Some(patient_id))
    );
    assert_eq!(event.entity_id, format!("{accession}/GRAM"));
    assert!(event.after.as_deref().unwrap().contains(&file.sha256));
}

#[tokio::test]
async fn a_file_without_a_session_or_key_is_not_served() {
    let app = app().await;
    let (_, accession) = gram_stain_received(&app).await;
    let pdf = gram_stain_pdf();
    let ack = send_mllp(&app, &gram_report_oru("GRAM-PDF-2", &accession, &base64(&pdf))).await;
    assert_eq!(ack.get("MSA-1").unwrap().text(), "AA");
    let view = app.lab.specimen_view(&Actor::system(), &accession).await.unwrap();
    let gram = &view.tests[0];
    let file = gram.attachment_of(gram.versions.last().unwrap()).unwrap();
    let reply = app
        .send(
            axum::http::Request::builder()
                .uri(format!("/results/attachments/{}", file.id))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(!reply.body.contains("%PDF"));
}

#[tokio::test]
async fn a_file_over_the_labs_limit_is_refused_at_obx_5_and_waits_in_the_quarantine() {
    let app =
        app_with(LabConfig { instrument_attachment_bytes_max: 512, ..Default::default() }).await;
    let (_, accession) = gram_stain_received(&app).await;
    let pdf = gram_stain_pdf();
    assert!(pdf.len() > 512, "the report is larger than this lab's limit");

    let ack =
        send_mllp(&app, &gram_report_oru("GRAM-PDF-3", &accession, &wrapped(&base64(&pdf)))).await;
    assert_eq!(ack.get("MSA-1").unwrap().text(), "AE");
    let reason = format!(
        "GRAM: the attached file (application/pdf) is {} bytes; the limit is 512: have the instrument send a smaller file, or raise --instrument-attachment-bytes-max and replay the message",
        pdf.len()
    );
    assert_eq!(
        err_segment(&ack),
        format!("ERR||OBX^1^5|102^Data type error^HL70357|E|||{reason}|{reason}")
    );
    let filter = MessageFilter { direction: Some(Direction::In), ..Default::default() };
    let logged = app.lab.message_log(&Actor::system(), &filter).await.unwrap();
    assert_eq!(
        (logged[0].outcome.code(), logged[0].detail.as_str()),
        ("quarantined", format!("OBX 1: {reason}").as_str())
    );
    let view = app.lab.specimen_view(&Actor::system(), &accession).await.unwrap();
    assert!(view.tests.iter().all(|t| t.versions.is_empty() && t.attachments.is_empty()));
}

#[tokio::test]
async fn encapsulated_data_that_is_not_base64_is_refused_naming_the_character_and_nothing_is_stored()
 {
    let app = app().await;
    let (_, accession) = gram_stain_received(&app).await;
    // A byte lost on the line: one character of the Base64 turned into `*`.
    let mut data = base64(&gram_stain_pdf());
    data.replace_range(40..41, "*");

    let ack = send_mllp(&app, &gram_report_oru("GRAM-PDF-4", &accession, &data)).await;
    let reason = "GRAM: the attached file cannot be read: the data (OBX-5.5) is not Base64: '*' at character 41 of the data; the instrument must send it again";
    assert_eq!(ack.get("MSA-1").unwrap().text(), "AE");
    assert_eq!(
        err_segment(&ack),
        format!("ERR||OBX^1^5|102^Data type error^HL70357|E|||{reason}|{reason}")
    );
    let filter = MessageFilter { direction: Some(Direction::In), ..Default::default() };
    let logged = app.lab.message_log(&Actor::system(), &filter).await.unwrap();
    assert_eq!(
        (logged[0].outcome.code(), logged[0].detail.as_str()),
        ("quarantined", format!("OBX 1: {reason}").as_str())
    );
    let view = app.lab.specimen_view(&Actor::system(), &accession).await.unwrap();
    assert!(view.tests.iter().all(|t| t.versions.is_empty()), "nothing stored");
}

#[tokio::test]
async fn an_encoding_hl7_does_not_define_is_refused_by_name() {
    let app = app().await;
    let (_, accession) = gram_stain_received(&app).await;
    let message = String::from_utf8(gram_report_oru("GRAM-PDF-5", &accession, "begin 644 x"))
        .unwrap()
        .replace("^pdf^Base64^", "^pdf^UUENCODE^");

    let ack = send_mllp(&app, message.as_bytes()).await;
    assert_eq!(ack.get("MSA-1").unwrap().text(), "AE");
    assert_eq!(ack.get("ERR-2").unwrap().text(), "OBX^1^5");
    let filter = MessageFilter { direction: Some(Direction::In), ..Default::default() };
    let logged = app.lab.message_log(&Actor::system(), &filter).await.unwrap();
    assert_eq!(
        logged[0].detail,
        "OBX 1: GRAM: the attached file cannot be read: encoding \"UUENCODE\" (OBX-5.4) is not read: send Base64, Hex or A (HL7 table 0299); the instrument must send it again"
    );
}
