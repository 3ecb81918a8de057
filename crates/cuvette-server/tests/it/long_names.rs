//! Names of any length and script on every list: each row carries the name whole and, beside
//! it, the date of birth, the sex and the MRN, so no identifier depends on the name being
//! short. (How it looks — no page wider than the window — is the browser test's part.)

use cuvette_app::{Actor, EnteredResult, PlaceOrder, RegisterPatient};
use cuvette_domain::Role;

use crate::support::app;

fn words(n: usize) -> String {
    "Wolfeschlegelsteinhausen Bergerdorff Vanderbilt "
        .repeat(3)
        .chars()
        .take(n)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn every_list_shows_a_long_or_foreign_name_whole_with_its_birth_date_sex_and_mrn() {
    let app = app().await;
    let names = [
        ("LN-60", words(30), words(28)),
        ("LN-200", words(100), words(98)),
        ("LN-W", "Ж".repeat(100), "w".repeat(98)),
        ("LN-PL", "Żółć".to_owned(), "Łukasz".to_owned()),
        ("LN-VN", "Nguyễn".to_owned(), "Thị Minh Khai".to_owned()),
        ("LN-GR", "Αλεξίου".to_owned(), "Ψυχή".to_owned()),
        ("LN-CN", "王".to_owned(), "秀英".to_owned()),
    ];
    let sys = Actor::system();
    let mut waiting = Vec::new();
    for (mrn, family, given) in &names {
        let p = RegisterPatient {
            mrn: (*mrn).into(),
            family_name: family.clone(),
            given_name: given.clone(),
            birth_date: "1945-07-14".into(),
            sex: "F".into(),
        };
        let (patient_id, acc) = app.a_received_specimen(mrn, p, "Dr. Long", &["K"]).await;
        let test = app.lab.specimen_view(&sys, &acc).await.unwrap().tests[0].item.test.clone();
        // A critical potassium: on the worklist, the review queue and the critical calls.
        let entry = EnteredResult {
            ordered_test_id: test.id,
            row_version: test.row_version,
            text: "7.4".into(),
        };
        app.lab.enter_results(&sys, &[entry], None).await.unwrap();
        // A second order, still to be drawn: on the collection list.
        let order = PlaceOrder {
            patient_id,
            provider: "Dr. Long".into(),
            priority: "routine".into(),
            tests: vec!["NA".into()],
            ..Default::default()
        };
        let placed = app.lab.place_order(&sys, &order).await.unwrap();
        waiting.push(placed.specimens[0].accession.clone());
    }
    let mls = app.sign_in(Role::Technologist, "ln").await;
    let phleb = app.sign_in(Role::Phlebotomist, "ln").await;
    let labels = format!(
        "/labels?{}",
        waiting.iter().map(|a| format!("acc={a}")).collect::<Vec<_>>().join("&")
    );
    let pages = [
        (&mls, "/worklist?bench=chemistry".to_owned()),
        (&mls, "/review".to_owned()),
        (&mls, "/critical".to_owned()),
        (&mls, "/orders".to_owned()),
        (&phleb, "/collect".to_owned()),
        (&phleb, labels),
    ];
    for (session, uri) in &pages {
        let page = app.get(session, uri).await;
        assert!(page.status.is_success(), "{uri}: {}", page.status);
        for (mrn, family, given) in &names {
            let name = format!("{}, {given}", family.to_uppercase());
            assert!(
                page.body.contains(&name) || page.body.contains(&family.to_uppercase()),
                "{uri} names {name}"
            );
            assert!(page.body.contains(*mrn), "{uri} shows MRN {mrn}");
        }
        assert!(page.body.contains("14-Jul-1945"), "{uri} shows the date of birth");
        assert!(page.body.contains("Female") || page.body.contains(" F"), "{uri} shows the sex");
    }
    for (mrn, family, _) in &names {
        let q = crate::support::enc(&family.chars().take(20).collect::<String>());
        let page = app.get(&mls, &format!("/patients?q={q}")).await;
        assert!(
            page.body.contains(*mrn)
                && page.body.contains("14-Jul-1945")
                && page.body.contains("Female"),
            "the patient search shows {mrn}"
        );
    }
}
