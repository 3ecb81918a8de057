//! A text report from an instrument longer than a bench entry (a microbiology system's Gram
//! stain narrative) over the MLLP listener: stored whole up to the lab's limit and shown
//! whole on the report, escaped; a longer one is refused with its message, nothing stored.

use cuvette_app::records::{Direction, MessageFilter};
use cuvette_app::{Actor, RegisterPatient, Release};
use cuvette_domain::Role as Staff;
use cuvette_domain::workflow::TestStatus;

use crate::support::{App, app, send_mllp};

/// A received swab with a Gram stain ordered, and the microbiology system registered:
/// (patient id, accession).
async fn gram_stain_received(app: &App) -> (i64, String) {
    let lab = &app.lab;
    let supervisor = app.sign_in(Staff::Supervisor, "micro").await.actor;
    let id =
        lab.add_instrument(&supervisor, "Microbiology system", "hl7", "MICROSYS").await.unwrap();
    lab.map_test_code(&supervisor, id, "GRAM", "GRAM", "").await.unwrap();
    let patient = RegisterPatient {
        mrn: "M3301".into(),
        family_name: "Haddad".into(),
        given_name: "Rami".into(),
        birth_date: "1961-02-11".into(),
        sex: "M".into(),
    };
    app.a_received_specimen("micro", patient, "Dr. L. Ferreira", &["GRAM"]).await
}

/// A narrative of exactly `chars` characters as stored: lines of 80 characters with the
/// characters a report must escape, each line after the first adding its newline, and a rule
/// of dashes to make up the count.
fn narrative(chars: usize) -> Vec<String> {
    let line = "Gram-positive cocci in clusters <many> & Gram-negative rods (few), no yeast seen";
    assert_eq!(line.chars().count(), 80);
    let mut lines: Vec<String> = Vec::new();
    let mut len = 0;
    loop {
        let newline = usize::from(!lines.is_empty());
        let Some(room) = (chars - len).checked_sub(newline).filter(|r| *r > 0) else { break };
        let next = if room == 80 || room >= 82 { line.to_owned() } else { "-".repeat(room) };
        len += newline + next.chars().count();
        lines.push(next);
    }
    lines
}

/// The microbiology system's ORU^R01 with the narrative as an OBX of type TX, one
/// repetition per line, `&` escaped as HL7 requires.
fn gram_oru(control_id: &str, accession: &str, lines: &[String]) -> Vec<u8> {
    let value = lines.iter().map(|l| l.replace('&', "\\T\\")).collect::<Vec<_>>().join("~");
    format!(
        "MSH|^~\\&|MICROSYS|MICRO LAB|CUVETTE|LAB|20261124120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
         PID|1||M3301^^^HOSP^MR||Haddad^Rami||19610211|M\r\
         OBR|1||{accession}|664-3^Gram stain^LN|||20261124110000\r\
         OBX|1|TX|GRAM^Gram stain||{value}||||||F\r"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_gram_stain_narrative_of_ten_thousand_characters_is_stored_and_reported_whole() {
    let app = app().await;
    let (patient_id, accession) = gram_stain_received(&app).await;
    let lines = narrative(10_000);
    let text = lines.join("\n");
    assert_eq!(text.chars().count(), 10_000);

    let ack = send_mllp(&app, &gram_oru("GRAM-0001", &accession, &lines)).await;
    assert_eq!(ack.get("MSA-1").unwrap().text(), "AA");

    let view = app.lab.specimen_view(&Actor::system(), &accession).await.unwrap();
    let gram = view.tests.iter().find(|t| t.item.test.test_code == "GRAM").unwrap();
    let stored = gram.versions.last().unwrap();
    assert_eq!(stored.value_text, text, "every character, each line on its own");
    assert_eq!(stored.report_text, text);

    let technologist = app.sign_in(Staff::Technologist, "micro").await;
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
    let escaped = text.replace('&', "&#38;").replace('<', "&#60;").replace('>', "&#62;");
    assert!(report.body.contains(&escaped), "the whole narrative, escaped");
    assert!(!report.body.contains("<many>"), "nothing of it read as markup");
    let (status, pdf) =
        app.get_bytes(&technologist, &format!("/patients/{patient_id}/report.pdf")).await;
    assert_eq!(status, 200);
    assert!(pdf.starts_with(b"%PDF"));
}

#[tokio::test]
async fn a_narrative_over_the_labs_limit_is_refused_with_its_message_and_nothing_stored() {
    let app = app().await;
    let (_, accession) = gram_stain_received(&app).await;
    let limit = app.lab.config().instrument_text_chars_max;
    assert_eq!(limit, 65_536, "the default");
    let lines = narrative(limit + 1);

    let ack = send_mllp(&app, &gram_oru("GRAM-0002", &accession, &lines)).await;
    let field = |path| ack.get(path).unwrap().text().into_owned();
    assert_eq!(
        (field("MSA-1"), field("ERR-2"), field("ERR-3")),
        ("AE".into(), "OBX^1^5".into(), "102^Data type error^HL70357".into())
    );
    let filter = MessageFilter { direction: Some(Direction::In), ..Default::default() };
    let logged = app.lab.message_log(&Actor::system(), &filter).await.unwrap();
    assert_eq!(
        (logged[0].outcome.code(), logged[0].detail.as_str()),
        ("quarantined", "OBX 1: GRAM: the result is 65537 characters long; the limit is 65536")
    );
    let view = app.lab.specimen_view(&Actor::system(), &accession).await.unwrap();
    assert!(view.tests.iter().all(|t| t.versions.is_empty()), "nothing stored");
}
