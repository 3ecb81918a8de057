//! The privilege check per action, in a lab of 500 staff and 100 test systems (50 tests on
//! two analyzers each): what result entry and verification cost with qualifications
//! enforced, against the role-only check every action already paid (the baseline, in the
//! same run).
//!
//! - `baseline_role_only`: find the person among the 500, then `Privileges::may`.
//! - `person_gate`: the same, then `staff::may_perform` for one test on one analyzer
//!   (education for the complexity, the discipline authorised, licence and certification
//!   valid, competency current on the test system from the person's 40 assessments).
//! - `anyone_competent`: what autoverification asks of each result it would release: is
//!   anyone of the 500 qualified and competency-current for this test on this analyzer.
//!
//! `bench/privileges.sh` runs it and prints the ratios;
//! `cargo bench -p cuvette-domain --bench privileges` runs it alone.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use cuvette_domain::role::Privileges;
use cuvette_domain::staff::{
    self, Assessment, Authorisation, Certification, Complexity, Credential, Education,
    EducationLevel, ElementEvidence, FieldOfStudy, Licence, Method, Outcome, Person,
    QualificationPolicy, Scope, StaffRecord, TestFacts, TestSystem,
};
use cuvette_domain::{Action, Role};
use jiff::civil::{Date, date};

const STAFF: usize = 500;
const TESTS: usize = 50;
const ANALYZERS: [&str; 2] = ["Chem-1", "Chem-2"];
const DISCIPLINES: [&str; 5] =
    ["chemistry", "hematology", "coagulation", "urinalysis", "immunology"];
/// Test systems each person is assessed on (two assessments each).
const SYSTEMS_PER_PERSON: usize = 20;

struct Member {
    role: Role,
    record: StaffRecord,
    authorisations: Vec<Authorisation>,
    assessments: Vec<Assessment>,
}

fn element(on: Date) -> ElementEvidence {
    ElementEvidence { evidence: "observed".into(), assessor: "ts".into(), assessed_on: on }
}

/// A test of the catalog: code, discipline, complexity.
type Test = (String, String, Complexity);

fn lab() -> (Vec<String>, HashMap<String, Member>, Vec<Test>) {
    let tests: Vec<Test> = (0..TESTS)
        .map(|t| {
            let complexity = if t % 3 == 0 { Complexity::High } else { Complexity::Moderate };
            (format!("T{t:02}"), DISCIPLINES[t % DISCIPLINES.len()].to_owned(), complexity)
        })
        .collect();
    let mut names = Vec::new();
    let mut staff = HashMap::new();
    for p in 0..STAFF {
        let name = format!("person{p:03}");
        let record = StaffRecord {
            education: vec![Education {
                level: if p % 4 == 0 {
                    EducationLevel::Associate
                } else {
                    EducationLevel::Bachelor
                },
                field: FieldOfStudy::MedicalLaboratoryScience,
                institution: "State University".into(),
                accreditation: None,
                completed_on: date(2012, 5, 15),
            }],
            certifications: vec![Certification {
                credential: Credential::AscpMls,
                number: format!("MLS-{p}"),
                issued_on: date(2012, 8, 1),
                expires_on: Some(date(2027, 7, 31)),
            }],
            licences: vec![Licence {
                state: "CA".into(),
                number: format!("CLS {p}"),
                expires_on: date(2027, 1, 31),
            }],
            hire_date: date(2013, 1, 7),
            experience_since: date(2013, 1, 7),
            disciplines: DISCIPLINES[..3].iter().map(|d| d.to_string()).collect(),
        };
        let authorisations = (0..3)
            .map(|d| Authorisation {
                discipline: DISCIPLINES[(p + d) % DISCIPLINES.len()].into(),
                authorised_by: "dir".into(),
                authorised_on: date(2013, 2, 1),
            })
            .collect();
        let assessments = (0..SYSTEMS_PER_PERSON)
            .flat_map(|s| {
                let system = (p * 7 + s) % (TESTS * ANALYZERS.len());
                let system = TestSystem {
                    scope: Scope::Test(tests[system % TESTS].0.clone()),
                    method: Method::Instrument(ANALYZERS[system / TESTS].into()),
                };
                [date(2025, 12, 1), date(2026, 6, 1)].map(|on| Assessment {
                    system: system.clone(),
                    elements: std::array::from_fn(|_| element(on)),
                    outcome: Outcome::Pass,
                })
            })
            .collect();
        let role = if p % 5 == 0 { Role::Technician } else { Role::Technologist };
        staff.insert(name.clone(), Member { role, record, authorisations, assessments });
        names.push(name);
    }
    (names, staff, tests)
}

fn person(m: &Member) -> Person<'_> {
    Person {
        record: Some(&m.record),
        authorisations: &m.authorisations,
        assessments: &m.assessments,
    }
}

fn bench(c: &mut Criterion) {
    let (names, staff, tests) = lab();
    let privileges = Privileges::seeded();
    let policy = QualificationPolicy {
        enforce: true,
        licence_required_from: Some(Complexity::Moderate),
        certification_required_from: Some(Complexity::High),
    };
    let today = date(2026, 11, 24);
    let methods: Vec<Method> = ANALYZERS.iter().map(|a| Method::Instrument((*a).into())).collect();
    // The actions of a shift: who, which test, on which analyzer; the same list for each.
    let actions: Vec<(usize, usize, usize)> =
        (0..1024).map(|i| ((i * 37) % STAFF, (i * 11) % TESTS, i % ANALYZERS.len())).collect();
    let facts = |t: usize, m: usize| TestFacts {
        code: &tests[t].0,
        discipline: &tests[t].1,
        complexity: tests[t].2,
        method: Some(&methods[m]),
    };
    let allowed = actions
        .iter()
        .filter(|(p, t, m)| {
            staff::may_perform(&policy, person(&staff[&names[*p]]), facts(*t, *m), today).is_ok()
        })
        .count();
    eprintln!("{allowed} of {} sampled actions allowed by the gate", actions.len());

    let mut group = c.benchmark_group("privilege_check_per_action");
    let mut i = 0;
    group.bench_function("baseline_role_only", |b| {
        b.iter(|| {
            let (p, _, _) = actions[i % actions.len()];
            i += 1;
            let member = &staff[black_box(&names[p])];
            black_box(privileges.may(member.role, Action::EnterResult))
        })
    });
    let mut i = 0;
    group.bench_function("person_gate", |b| {
        b.iter(|| {
            let (p, t, m) = actions[i % actions.len()];
            i += 1;
            let member = &staff[black_box(&names[p])];
            let role_ok = privileges.may(member.role, Action::EnterResult);
            black_box(
                role_ok && staff::may_perform(&policy, person(member), facts(t, m), today).is_ok(),
            )
        })
    });
    let everyone: Vec<Person<'_>> = names.iter().map(|n| person(&staff[n])).collect();
    let mut i = 0;
    group.bench_function("anyone_competent", |b| {
        b.iter(|| {
            let (_, t, m) = actions[i % actions.len()];
            i += 1;
            black_box(staff::anyone_may_perform(&policy, black_box(&everyone), facts(t, m), today))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
