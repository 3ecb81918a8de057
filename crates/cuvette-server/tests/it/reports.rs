//! The printed report and the exports, as the lab hands them out: every patient identifier on
//! every page of the PDF in any script and at any length, and CSV files a spreadsheet opens as
//! data, never as formulas.

use axum::http::{Method, StatusCode};
use cuvette_domain::Role;
use serde_json::json;

use crate::support::{App, Session, app};

/// A patient registered through the API; returns its id.
async fn register(app: &App, s: &Session, mrn: &str, family: &str, given: &str) -> i64 {
    let body = json!({
        "mrn": mrn, "family_name": family, "given_name": given,
        "birth_date": "1945-07-14", "sex": "F"
    });
    let r = app.api(s, Method::POST, "/api/v1/patients", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()["id"].as_i64().expect("the new patient's id")
}

/// `pdftotext -layout` of a PDF, one string per page; None (with a note) when poppler is not
/// installed, unless CUVETTE_REQUIRE_PDFTOTEXT=1 says the check must run.
fn pdftotext(pdf: &[u8], name: &str) -> Option<Vec<String>> {
    let file =
        std::env::temp_dir().join(format!("cuvette-report-{}-{name}.pdf", std::process::id()));
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&file)
        .arg("-")
        .output();
    let _ = std::fs::remove_file(&file);
    match out {
        Ok(out) => {
            assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8(out.stdout).expect("pdftotext writes UTF-8");
            Some(text.split('\u{c}').filter(|p| !p.trim().is_empty()).map(str::to_owned).collect())
        }
        Err(e) => {
            assert!(
                std::env::var("CUVETTE_REQUIRE_PDFTOTEXT").as_deref() != Ok("1"),
                "pdftotext is required (CUVETTE_REQUIRE_PDFTOTEXT=1) but cannot run: {e}; install poppler-utils"
            );
            eprintln!(
                "skipped: pdftotext cannot run ({e}); install poppler-utils to read the printed report"
            );
            None
        }
    }
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Prints the patient's report and checks every page carries the name (as the banner writes
/// it, "FAMILY, Given"), the MRN, the date of birth and the sex. A name too long for one line
/// wraps, so it is compared with the line breaks taken out.
async fn assert_report_identifies(app: &App, s: &Session, mrn: &str, family: &str, given: &str) {
    let id = register(app, s, mrn, family, given).await;
    let (status, pdf) = app.get_bytes(s, &format!("/patients/{id}/report.pdf")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pdf.starts_with(b"%PDF-"), "a PDF file");
    let Some(pages) = pdftotext(&pdf, mrn) else { return };
    let name = format!("{}, {given}", family.to_uppercase());
    for (i, page) in pages.iter().enumerate() {
        let page_no = i + 1;
        if name.chars().count() <= 40 {
            assert!(page.contains(&name), "page {page_no} names {name}:\n{page}");
        } else {
            assert!(
                squeeze(page).contains(&squeeze(&name)),
                "page {page_no} names {name}:\n{page}"
            );
        }
        let mrn_label = format!("MRN {mrn}");
        for identifier in [mrn_label.as_str(), "DOB 14-Jul-1945", "Sex Female"] {
            assert!(page.contains(identifier), "page {page_no} shows {identifier}:\n{page}");
        }
        assert!(!page.contains('\u{FFFD}'), "no character is missing:\n{page}");
    }
}

#[tokio::test]
async fn the_report_prints_names_in_every_script_exactly_as_registered() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "r").await;
    for (mrn, family, given) in [
        ("PL-1", "Żółć", "Łukasz"),
        ("VN-1", "Nguyễn", "Thị Minh Khai"),
        ("GR-1", "Αλεξίου", "Ψυχή"),
        ("RU-1", "Иванов", "Дмитрий"),
    ] {
        assert_report_identifies(&app, &s, mrn, family, given).await;
    }
}

#[tokio::test]
async fn a_long_or_unbroken_name_wraps_and_leaves_every_identifier_on_the_header() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "r").await;
    // The store takes up to 100 characters each for the family and the given name, so the
    // printed "FAMILY, Given" reaches 202. Names of 60 and of 200 characters, with spaces and
    // as two unbroken words.
    let words = |n: usize| -> String {
        "Wolfeschlegelsteinhausen Bergerdorff Vanderbilt ".repeat(3).chars().take(n).collect()
    };
    for (mrn, family, given) in [
        ("LONG-60", words(30).trim().to_owned(), words(28).trim().to_owned()),
        ("LONG-200", words(100).trim().to_owned(), words(98).trim().to_owned()),
        ("LONG-W", "Ж".repeat(100), "w".repeat(98)),
    ] {
        let printed = family.chars().count() + 2 + given.chars().count();
        assert!(printed >= 58, "{mrn} is a long name: {printed} characters");
        assert_report_identifies(&app, &s, mrn, &family, &given).await;
    }
}

#[tokio::test]
async fn a_cjk_name_prints_when_the_server_has_a_cjk_font() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "r").await;
    let id = register(&app, &s, "CN-1", "王", "秀英").await;
    let (status, pdf) = app.get_bytes(&s, &format!("/patients/{id}/report.pdf")).await;
    assert_eq!(status, StatusCode::OK);
    let Some(pages) = pdftotext(&pdf, "CN-1") else { return };
    if pages[0].contains('\u{FFFD}') {
        // No CJK font on this machine: the name prints as visible replacements, never as a
        // plausible-looking wrong name.
        assert!(
            std::env::var("CUVETTE_REQUIRE_CJK_FONT").as_deref() != Ok("1"),
            "a CJK font is required (CUVETTE_REQUIRE_CJK_FONT=1) but the report printed \u{FFFD}: install fonts-droid-fallback"
        );
        eprintln!("skipped: no CJK font on this machine (install fonts-droid-fallback)");
        return;
    }
    for identifier in ["王, 秀英", "MRN CN-1", "DOB 14-Jul-1945", "Sex Female"] {
        assert!(pages[0].contains(identifier), "{identifier}:\n{}", pages[0]);
    }
}

#[tokio::test]
async fn the_audit_export_hands_a_spreadsheet_no_formula() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "r").await;
    let formula = "=HYPERLINK(\"http://x\",\"y\")";
    register(&app, &s, "F-1", formula, "Ada").await;
    let admin = app.sign_in(Role::Pathologist, "a").await;
    let r = app.get(&admin, "/audit.csv").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut reader = csv::Reader::from_reader(r.body.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(header.iter().next(), Some("seq"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(
        rows.iter().any(|row| row.iter().any(|f| f.contains("HYPERLINK"))),
        "the registration is in the export:\n{}",
        r.body
    );
    for row in &rows {
        assert_eq!(row.len(), header.len(), "every row has every column");
        for field in row {
            assert!(
                !field.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{field:?} would run as a formula"
            );
        }
    }
}
