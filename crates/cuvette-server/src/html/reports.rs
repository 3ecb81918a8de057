//! The patient's cumulative report: an HTML page with a print stylesheet, and the same report
//! as a PDF (`crate::pdf`).
//!
//! Only released results are printed, grouped by specimen, newest first. Flags print as text
//! ("H", "CRIT L"), never as colour alone, and a corrected result says so with the value it
//! replaced, the reason, who corrected it and when (UX §2.6; CLIA 42 CFR 493.1291(k)).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cuvette_app::{CumulativeReport, Lab, ReportRow};
use cuvette_domain::workflow::ReleaseStatus;

use super::patients::{Banner, render_with, short_container};
use crate::AppState;
use crate::auth::{ApiCaller, Bench};
use crate::error::{ApiError, WebError};
use crate::pdf;
use crate::web::{Page, flag_chips, when};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/report", get(report_html))
        .route("/patients/{id}/report.pdf", get(report_pdf))
        .route("/results/attachments/{id}", get(attachment_download))
}

/// A result's file, as the instrument sent it: for the report's link and for scripts (the
/// JSON result's `download_url`), so it takes a session or an API key alike. Audited as a
/// view of the patient's record. Served as a download, never rendered in Cuvette's pages:
/// its type is the instrument's word, and an HTML or SVG file opened inline would run as
/// Cuvette.
async fn attachment_download(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let file = state.lab.result_attachment(&caller.actor, id).await?;
    let a = &file.attachment;
    let extension = a
        .media_type
        .split_once('/')
        .map(|(_, subtype)| subtype)
        .filter(|s| s.len() <= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .filter(|s| *s != "octet")
        .unwrap_or("bin");
    // Accession numbers and test codes are letters, digits and hyphens; anything else is
    // dropped from the file name.
    let name: String = format!("{}-{}", file.item.specimen.accession, file.item.test.test_code)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, a.media_type.clone()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-v{}.{extension}\"", a.result_version),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        file.content,
    )
        .into_response())
}

/// One released result as the report prints it.
struct ReportLine {
    test: String,
    code: String,
    value: String,
    unit: String,
    /// Flags as text ("CRIT H", "L"), empty when within limits.
    flag: String,
    /// CSS class of the flag on screen.
    flag_class: &'static str,
    interval: String,
    /// How it was released.
    release: ReleaseStatus,
    /// "FINAL", "PRELIMINARY" or "CORRECTED".
    status: &'static str,
    /// CSS class of the status.
    status_class: &'static str,
    /// "mls · 24-Nov-2026 08:05".
    released: String,
    /// For a corrected result: what it replaced, why, who and when.
    corrected: String,
    /// The file an instrument sent as the result (a PDF report), when it is one.
    attachment: Option<AttachmentLine>,
}

/// A result's file as the report lists it: its name, type and size, and where signed-in
/// staff download it (each download audited).
pub(crate) struct AttachmentLine {
    pub(crate) name: String,
    pub(crate) media_type: String,
    /// "192 bytes", "1.4 MB".
    pub(crate) size: String,
    pub(crate) href: String,
}

impl AttachmentLine {
    pub(crate) fn of(a: &cuvette_app::records::AttachmentRow) -> AttachmentLine {
        AttachmentLine {
            name: a.name.clone(),
            media_type: a.media_type.clone(),
            size: file_size(a.size),
            href: attachment_href(a.id),
        }
    }

    /// "Attached file: Report PDF (application/pdf, 192 bytes)".
    pub(crate) fn describe(&self) -> String {
        format!("Attached file: {} ({}, {})", self.name, self.media_type, self.size)
    }
}

/// Where a result's file is downloaded.
pub(crate) fn attachment_href(id: i64) -> String {
    format!("/results/attachments/{id}")
}

/// A size as people read it: exact bytes below a kilobyte, else one decimal.
fn file_size(bytes: i64) -> String {
    const KB: f64 = 1000.0;
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes} bytes")
    } else if b < KB * KB {
        format!("{:.1} kB", b / KB)
    } else {
        format!("{:.1} MB", b / (KB * KB))
    }
}

/// The results of one specimen.
struct SpecimenGroup {
    accession: String,
    collected: String,
    specimen: String,
    provider: String,
    lines: Vec<ReportLine>,
}

/// The report, ready for HTML or PDF.
struct ReportData {
    lab_name: String,
    title: &'static str,
    banner: Banner,
    printed: String,
    groups: Vec<SpecimenGroup>,
    corrected_count: usize,
    result_count: usize,
}

fn line(lab: &Lab, row: &ReportRow) -> Option<ReportLine> {
    let t = &row.test;
    let released = t.released()?;
    let chips = flag_chips(&released.flags);
    let flag = chips.iter().map(|c| c.label).collect::<Vec<_>>().join(" ");
    let flag_class = if released.flags.is_critical() {
        "crit"
    } else if released.flags.is_invalid() {
        "inv"
    } else {
        "abn"
    };
    // Only released versions reach the report.
    let release = released.release_status.unwrap_or(ReleaseStatus::Final);
    let (status, status_class) = match release {
        ReleaseStatus::Corrected => ("CORRECTED", "corrected"),
        ReleaseStatus::Preliminary => ("PRELIMINARY", "preliminary"),
        ReleaseStatus::Final => ("FINAL", "final"),
    };
    let corrected = match t.corrected_from() {
        Some(old) => {
            let unit = if old.unit.is_empty() { String::new() } else { format!(" {}", old.unit) };
            let reason = released
                .correction_reason
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .unwrap_or("no reason recorded");
            format!(
                "Corrected from {}{unit} (released {}): {reason}; corrected by {}, {}",
                old.report_text,
                when(lab, old.released_at),
                released.entered_by,
                lab.format_time(released.entered_at),
            )
        }
        None if release == ReleaseStatus::Corrected => "Corrected result".into(),
        None => String::new(),
    };
    Some(ReportLine {
        test: t.name.clone(),
        code: t.item.test.test_code.clone(),
        value: released.report_text.clone(),
        unit: released.unit.clone(),
        flag,
        flag_class,
        interval: released.reference_interval.clone(),
        release,
        status,
        status_class,
        released: format!(
            "{} · {}",
            released.released_by.clone().unwrap_or_default(),
            when(lab, released.released_at)
        ),
        corrected,
        attachment: t.attachment_of(released).map(AttachmentLine::of),
    })
}

fn report_data(lab: &Lab, report: &CumulativeReport) -> ReportData {
    let mut groups: Vec<(i64, SpecimenGroup)> = Vec::new();
    for row in &report.rows {
        let Some(line) = line(lab, row) else { continue };
        let item = &row.test.item;
        let specimen_id = item.specimen.id;
        let at = match groups.iter().position(|(id, _)| *id == specimen_id) {
            Some(at) => at,
            None => {
                let s = &item.specimen;
                let specimen = [s.specimen_type.clone(), short_container(&s.container)]
                    .into_iter()
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join(" · ");
                groups.push((
                    specimen_id,
                    SpecimenGroup {
                        accession: s.accession.clone(),
                        collected: row
                            .collected_at
                            .map(|m| lab.format_time(m))
                            .unwrap_or_else(|| "Not known".into()),
                        specimen,
                        provider: item.order.provider.clone(),
                        lines: Vec::new(),
                    },
                ));
                groups.len() - 1
            }
        };
        groups[at].1.lines.push(line);
    }
    let groups: Vec<SpecimenGroup> = groups.into_iter().map(|(_, g)| g).collect();
    let lines = || groups.iter().flat_map(|g| &g.lines);
    let corrected_count = lines().filter(|l| l.release == ReleaseStatus::Corrected).count();
    let result_count = lines().count();
    ReportData {
        lab_name: lab.config().lab_name.clone(),
        title: if corrected_count > 0 { "CORRECTED REPORT" } else { "Cumulative report" },
        banner: Banner::of(lab, &report.patient),
        printed: lab.format_time(lab.now_at()),
        groups,
        corrected_count,
        result_count,
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    page: Page,
    patient_id: i64,
    banner: Banner,
    r: ReportData,
}

async fn report_html(
    State(state): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let report = state.lab.cumulative_report(&bench.actor, id).await?;
    let r = report_data(&state.lab, &report);
    let mut page = Page::new(&bench, format!("Report · {}", r.banner.name()), "patients");
    page.body_class = "report-page";
    render_with(StatusCode::OK, &ReportPage { page, patient_id: id, banner: r.banner.clone(), r })
}

async fn report_pdf(
    State(state): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let report = state.lab.cumulative_report(&bench.actor, id).await?;
    let r = report_data(&state.lab, &report);
    let bytes = pdf::render(&pdf_report(&r));
    // The MRN is letters, digits and hyphens; anything else is dropped from the file name.
    let mrn: String =
        r.banner.mrn.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    let disposition = format!("inline; filename=\"report-{mrn}.pdf\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// The patient's released results as the PDF report (also linked from FHIR
/// `DiagnosticReport.presentedForm`).
pub(crate) fn report_pdf_bytes(lab: &Lab, report: &CumulativeReport) -> Vec<u8> {
    pdf::render(&pdf_report(&report_data(lab, report)))
}

fn pdf_report(r: &ReportData) -> pdf::Report {
    let b = &r.banner;
    let age = if b.age.is_empty() { String::new() } else { format!(" ({})", b.age) };
    let mut sections: Vec<pdf::Section> = r
        .groups
        .iter()
        .map(|g| {
            let mut heading = format!("Collected {} · Accession {}", g.collected, g.accession);
            if !g.specimen.is_empty() {
                heading.push_str(&format!(" · {}", g.specimen));
            }
            if !g.provider.is_empty() {
                heading.push_str(&format!(" · Ordered by {}", g.provider));
            }
            pdf::Section {
                heading,
                columns: vec![
                    pdf::Column::new("Test", 24.0),
                    pdf::Column::new("Result", 11.0).right(),
                    pdf::Column::new("Unit", 10.0),
                    pdf::Column::new("Flag", 8.0).bold(),
                    pdf::Column::new("Reference", 12.0),
                    pdf::Column::new("Status", 13.0),
                    pdf::Column::new("Released", 22.0),
                ],
                rows: g
                    .lines
                    .iter()
                    .map(|l| pdf::Row {
                        cells: vec![
                            l.test.clone(),
                            l.value.clone(),
                            l.unit.clone(),
                            l.flag.clone(),
                            l.interval.clone(),
                            l.status.to_owned(),
                            l.released.clone(),
                        ],
                        // The PDF names the file; it is opened from the report on screen.
                        note: [
                            l.corrected.clone(),
                            l.attachment.as_ref().map(AttachmentLine::describe).unwrap_or_default(),
                        ]
                        .into_iter()
                        .filter(|n| !n.is_empty())
                        .collect::<Vec<_>>()
                        .join(". "),
                    })
                    .collect(),
            }
        })
        .collect();
    if sections.is_empty() {
        sections.push(pdf::Section {
            heading: "No released results for this patient.".into(),
            ..pdf::Section::default()
        });
    }
    sections.push(pdf::Section {
        heading: String::new(),
        columns: Vec::new(),
        rows: vec![pdf::Row {
            cells: Vec::new(),
            note: format!(
                "End of report: {} released {}. Flags: H high, L low, CRIT critical, A abnormal, <AMR/>AMR outside the measuring range.",
                r.result_count,
                if r.result_count == 1 { "result" } else { "results" }
            ),
        }],
    });
    pdf::Report {
        title: r.title.to_owned(),
        header_lines: vec![
            r.lab_name.clone(),
            format!("{}   DOB {}{age}   Sex {}   MRN {}", b.name(), b.dob, b.sex, b.mrn),
        ],
        footer: format!("Printed {} · Cuvette", r.printed),
        sections,
    }
}
