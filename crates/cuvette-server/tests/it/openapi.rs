//! The OpenAPI document is the API's contract: each route's real answers, successes and
//! refusals, must match the schema the document gives for that status, and the router must
//! serve exactly the documented operations.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cuvette_app::Actor;
use cuvette_domain::Role;
use serde_json::{Value, json};

use crate::support::{App, Reply, Session, app};

/// Checks answers against the served document and remembers which operations answered
/// with their documented success.
struct Contract {
    doc: Value,
    succeeded: BTreeSet<(String, String)>,
}

impl Contract {
    async fn load(app: &App) -> Contract {
        let reply = app
            .send(Request::builder().uri("/api/openapi.json").body(Body::empty()).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "the document is served without a key");
        let doc = reply.json();
        let mut contract = Contract { doc, succeeded: BTreeSet::new() };
        contract.check("GET", "/api/openapi.json", &reply);
        contract
    }

    /// The documented operations, as (method, path template).
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                ops.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        ops
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("local reference");
            v = self.doc.pointer(pointer).unwrap_or_else(|| panic!("{r} does not resolve"));
        }
        v
    }

    /// Asserts that `reply`, the answer to `method` on the route `template`, has a documented
    /// status and a body that matches that status's schema; returns the body.
    fn check(&mut self, method: &str, template: &str, reply: &Reply) -> Value {
        let op = &self.doc["paths"][template][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the document");
        let status = reply.status.as_u16().to_string();
        let documented = self.resolve(&op["responses"][&status]);
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which the document does not list: {}",
            reply.body
        );
        let schema = &documented["content"]["application/json"]["schema"];
        let body = reply.json();
        let mut errors = Vec::new();
        self.validate(schema, &body, "$", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {template} answered {status} with a body that breaks its schema:\n{}\nbody: {body:#}",
            errors.join("\n")
        );
        if reply.status.is_success() {
            self.succeeded.insert((method.to_owned(), template.to_owned()));
        }
        body
    }

    /// The JSON Schema subset the document uses: $ref, anyOf, type (one or a list, "null"
    /// for nullable), properties, required, additionalProperties, items, enum, and the
    /// formats date-time and date.
    fn validate(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let fits = any.iter().any(|s| {
                let mut e = Vec::new();
                self.validate(s, v, at, &mut e);
                e.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: {v} fits none of {}", Value::Array(any.clone())));
            }
            return;
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let fits =
                types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
            if !fits {
                errors.push(format!("{at}: {actual} where the schema says {types:?}"));
                return;
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(v)
        {
            errors.push(format!("{at}: {v} is not one of {}", Value::Array(values.clone())));
        }
        if let (Some(format), Value::String(s)) = (schema.get("format").and_then(Value::as_str), v)
        {
            let ok = match format {
                "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
                "date" => s.parse::<jiff::civil::Date>().is_ok(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{at}: {s:?} is not a {format}"));
            }
        }
        match v {
            Value::Object(map) => {
                for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                    let name = name.as_str().unwrap();
                    if !map.contains_key(name) {
                        errors.push(format!("{at}: required {name} is missing"));
                    }
                }
                let properties = schema.get("properties").and_then(Value::as_object);
                for (name, value) in map {
                    let field = format!("{at}.{name}");
                    match (properties.and_then(|p| p.get(name)), schema.get("additionalProperties"))
                    {
                        (Some(s), _) => self.validate(s, value, &field, errors),
                        (None, Some(Value::Bool(false))) => {
                            errors.push(format!("{field} is not in the schema"))
                        }
                        (None, Some(extra)) => self.validate(extra, value, &field, errors),
                        // A response struct is declared with every field it has: a field the
                        // schema does not name is undocumented output.
                        (None, None) if properties.is_some() => {
                            errors.push(format!("{field} is not in the schema"))
                        }
                        (None, None) => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(s, item, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            _ => {}
        }
    }
}

async fn call(app: &App, key: &str, method: Method, uri: &str, body: Option<Value>) -> Reply {
    app.api_key(key, method, uri, body).await
}

#[tokio::test]
async fn every_documented_route_answers_with_the_schema_the_document_gives() {
    let app = app().await;
    let mut c = Contract::load(&app).await;
    let key = app.lab.create_api_key(&Actor::system(), "ehr", Role::Technologist).await.unwrap();
    let supervisor: Session = app.sign_in(Role::Supervisor, "api").await;

    // The front desk registers a patient and finds her again.
    let body = json!({ "mrn": "OA100", "family_name": "Contract", "given_name": "Ada", "birth_date": "1958-03-02", "sex": "F" });
    let r = call(&app, &key, Method::POST, "/api/v1/patients", Some(body)).await;
    let patient = c.check("POST", "/api/v1/patients", &r);
    let patient_id = patient["id"].as_i64().unwrap();
    let r = call(&app, &key, Method::GET, "/api/v1/patients?q=OA100", None).await;
    assert_eq!(c.check("GET", "/api/v1/patients", &r)["patients"][0]["id"], patient_id);
    let r = call(&app, &key, Method::GET, &format!("/api/v1/patients/{patient_id}"), None).await;
    c.check("GET", "/api/v1/patients/{id}", &r);

    // An order for potassium and a blood count; the tubes are drawn and received.
    let order = json!({ "patient_id": patient_id, "provider": "Dr. O. Contract", "priority": "stat", "tests": ["K", "CBC"] });
    let r = call(&app, &key, Method::POST, "/api/v1/orders", Some(order)).await;
    let placed = c.check("POST", "/api/v1/orders", &r);
    let accessions: Vec<String> = placed["accessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let chemistry = placed["specimens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tests"].as_array().unwrap().contains(&json!("K")))
        .expect("a tube for potassium")["accession"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = accessions.iter().find(|a| **a != chemistry).expect("a second tube").clone();
    for acc in &accessions {
        let r =
            call(&app, &key, Method::POST, &format!("/api/v1/specimens/{acc}/collect"), None).await;
        c.check("POST", "/api/v1/specimens/{accession}/collect", &r);
    }
    let label = json!({ "mrn": "OA100", "birth_date": "1958-03-02" });
    let r = call(
        &app,
        &key,
        Method::POST,
        &format!("/api/v1/specimens/{chemistry}/receive"),
        Some(label),
    )
    .await;
    assert_eq!(c.check("POST", "/api/v1/specimens/{accession}/receive", &r)["status"], "received");

    // The hematology tube is clotted: rejected, and a recollection is created.
    let r = call(
        &app,
        &key,
        Method::POST,
        &format!("/api/v1/specimens/{other}/reject"),
        Some(json!({ "reason": "clotted", "note": "clot on the stick" })),
    )
    .await;
    c.check("POST", "/api/v1/specimens/{accession}/reject", &r);

    // The bench sees the potassium, enters a critical value, calls it and releases it.
    let r = call(&app, &key, Method::GET, "/api/v1/worklist?bench=chemistry", None).await;
    c.check("GET", "/api/v1/worklist", &r);
    let r = call(
        &app,
        &key,
        Method::POST,
        &format!("/api/v1/specimens/{chemistry}/results"),
        Some(json!({ "results": [{ "test_code": "K", "value": "6.9" }] })),
    )
    .await;
    let saved = c.check("POST", "/api/v1/specimens/{accession}/results", &r);
    let flags = saved["saved"][0]["flags"].as_array().unwrap();
    assert!(flags.contains(&json!("HH")), "6.9 mmol/L potassium is critical: {flags:?}");
    let test_id = saved["saved"][0]["ordered_test_id"].as_i64().unwrap();
    let r = call(&app, &key, Method::GET, "/api/v1/review-queue", None).await;
    c.check("GET", "/api/v1/review-queue", &r);

    // The tube is scanned into the search field, and the patient's orders are looked up.
    let r = call(&app, &key, Method::GET, &format!("/api/v1/search?q={chemistry}"), None).await;
    assert_eq!(c.check("GET", "/api/v1/search", &r)["accession"], json!(chemistry));
    let r =
        call(&app, &key, Method::GET, "/api/v1/orders?mrn=OA100&priority=stat&test=K", None).await;
    let found = c.check("GET", "/api/v1/orders", &r);
    assert_eq!(found["items"][0]["accession"], json!(chemistry), "{found}");

    let call_body =
        json!({ "called_person": "Dr. O. Contract, ED", "read_back": true, "notes": "" });
    let r = call(
        &app,
        &key,
        Method::POST,
        &format!("/api/v1/tests/{test_id}/critical-calls"),
        Some(call_body),
    )
    .await;
    c.check("POST", "/api/v1/tests/{id}/critical-calls", &r);
    let r = call(&app, &key, Method::GET, &format!("/api/v1/specimens/{chemistry}"), None).await;
    let specimen = c.check("GET", "/api/v1/specimens/{accession}", &r);
    let k = specimen["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["test_code"] == "K")
        .unwrap()
        .clone();
    let release =
        json!({ "tests": [{ "ordered_test_id": test_id, "row_version": k["row_version"] }] });
    let r = call(&app, &key, Method::POST, "/api/v1/release", Some(release)).await;
    let outcome = c.check("POST", "/api/v1/release", &r);
    assert_eq!(outcome["outcomes"][0]["outcome"], "released", "{outcome}");
    assert_eq!(outcome["outcomes"][0]["reason"], Value::Null);

    // The released result, with its call, on the specimen and the cumulative report.
    let r = call(&app, &key, Method::GET, &format!("/api/v1/specimens/{chemistry}"), None).await;
    let specimen = c.check("GET", "/api/v1/specimens/{accession}", &r);
    let k = specimen["tests"].as_array().unwrap().iter().find(|t| t["test_code"] == "K").unwrap();
    assert_eq!(k["released_result"]["status"], "final");
    assert_eq!(k["critical_calls"][0]["read_back"], true);
    let r =
        call(&app, &key, Method::GET, &format!("/api/v1/patients/{patient_id}/report"), None).await;
    let report = c.check("GET", "/api/v1/patients/{id}/report", &r);
    assert_eq!(report["results"][0]["test"]["released_result"]["value"], "6.9");

    // The audit log and the catalog; the supervisor saves a new potassium definition.
    let audit = format!("/api/v1/audit?patient_id={patient_id}");
    let r = app.api(&supervisor, Method::GET, &audit, None).await;
    assert!(!c.check("GET", "/api/v1/audit", &r)["events"].as_array().unwrap().is_empty());
    let r = call(&app, &key, Method::GET, "/api/v1/catalog/tests", None).await;
    c.check("GET", "/api/v1/catalog/tests", &r);
    let r = call(&app, &key, Method::GET, "/api/v1/catalog/tests/K", None).await;
    let current = c.check("GET", "/api/v1/catalog/tests/{code}", &r);
    let mut definition = current["definition"].clone();
    definition["name"] = json!("Potassium, serum or plasma");
    let save = json!({ "expected_version": current["version"].as_i64().unwrap_or(0), "definition": definition, "reason": "name as printed on the report" });
    let r = app.api(&supervisor, Method::PUT, "/api/v1/catalog/tests/K", Some(save)).await;
    c.check("PUT", "/api/v1/catalog/tests/{code}", &r);
    let r = app.api(&supervisor, Method::GET, "/api/v1/catalog/tests/K/diff", None).await;
    let diff = c.check("GET", "/api/v1/catalog/tests/{code}/diff", &r);
    assert_eq!(diff["diff"]["fields"][0]["after"], "Potassium, serum or plasma");
    let r = app.api(&supervisor, Method::GET, "/api/v1/catalog/export", None).await;
    let export = c.check("GET", "/api/v1/catalog/export", &r)["toml"].as_str().unwrap().to_owned();
    let import = json!({ "toml": export, "dry_run": true });
    let r = app.api(&supervisor, Method::POST, "/api/v1/catalog/import", Some(import)).await;
    assert_eq!(c.check("POST", "/api/v1/catalog/import", &r)["tests"], json!([]));
    let r = call(&app, &key, Method::GET, "/api/v1/catalog/tests/K", None).await;
    assert_eq!(
        c.check("GET", "/api/v1/catalog/tests/{code}", &r)["definition"]["name"],
        "Potassium, serum or plasma",
        "a definition read from the API saves back unchanged but for the edit"
    );

    // The synonyms of the nitrite pad: read, one added, one removed.
    let synonyms = "/api/v1/catalog/tests/UNIT/synonyms";
    let r = call(&app, &key, Method::GET, synonyms, None).await;
    c.check("GET", "/api/v1/catalog/tests/{code}/synonyms", &r);
    let add = json!({ "synonym": "+ve", "coded_value": "Positive" });
    let r = app.api(&supervisor, Method::POST, synonyms, Some(add)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    c.check("POST", "/api/v1/catalog/tests/{code}/synonyms", &r);
    let remove = json!({ "synonym": "+ve" });
    let r = app.api(&supervisor, Method::POST, &format!("{synonyms}/remove"), Some(remove)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    c.check("POST", "/api/v1/catalog/tests/{code}/synonyms/remove", &r);
    // A go-live: the analyzer, its settings and code map (one mapping, then a file), its
    // first message quarantined, read, replayed and — its duplicate — dismissed.
    let analyzer = json!({ "name": "Chem-1", "protocol": "hl7", "sender": "CHEM-OA" });
    let r = app.api(&supervisor, Method::POST, "/api/v1/instruments", Some(analyzer)).await;
    let instrument = c.check("POST", "/api/v1/instruments", &r)["id"].as_i64().unwrap();
    let at = format!("/api/v1/instruments/{instrument}");
    let r = app.api(&supervisor, Method::GET, "/api/v1/instruments", None).await;
    c.check("GET", "/api/v1/instruments", &r);
    let settings = json!({ "unmapped_results": "store_mappable", "specimen_id_component": null });
    let r = app.api(&supervisor, Method::PATCH, &at, Some(settings)).await;
    c.check("PATCH", "/api/v1/instruments/{id}", &r);
    let mapping = json!({ "instrument_code": "2823-3", "test_code": "K", "unit": "mmol/L" });
    let r = app.api(&supervisor, Method::POST, &format!("{at}/codes"), Some(mapping)).await;
    c.check("POST", "/api/v1/instruments/{id}/codes", &r);
    let r = app.api(&supervisor, Method::GET, &format!("{at}/codes/csv"), None).await;
    let file = c.check("GET", "/api/v1/instruments/{id}/codes/csv", &r)["csv"].clone();
    let import = json!({ "csv": file, "dry_run": true });
    let r = app.api(&supervisor, Method::POST, &format!("{at}/codes/csv"), Some(import)).await;
    c.check("POST", "/api/v1/instruments/{id}/codes/csv", &r);
    let r = app.api(&supervisor, Method::GET, &at, None).await;
    c.check("GET", "/api/v1/instruments/{id}", &r);
    let r = app.api(&supervisor, Method::GET, &format!("{at}/codes"), None).await;
    c.check("GET", "/api/v1/instruments/{id}/codes", &r);
    for control_id in ["OA0001", "OA0002"] {
        let raw = format!(
            "MSH|^~\\&|CHEM-OA|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
             PID|1\rOBR|1||26-0000999-3|K\rOBX|1|NM|2823-3^^LN||4.1|mmol/L|||||F\r"
        );
        cuvette_app::interop::hl7::receive(&app.lab, raw.as_bytes(), "mllp:2575", "10.0.0.9:4000")
            .await
            .unwrap();
    }
    let r = app.api(&supervisor, Method::GET, "/api/v1/quarantine", None).await;
    let waiting = c.check("GET", "/api/v1/quarantine", &r)["messages"].clone();
    let (second, first) = (waiting[0]["id"].as_i64().unwrap(), waiting[1]["id"].as_i64().unwrap());
    let r = app.api(&supervisor, Method::GET, "/api/v1/messages?direction=in", None).await;
    c.check("GET", "/api/v1/messages", &r);
    let r = app.api(&supervisor, Method::GET, &format!("/api/v1/messages/{first}"), None).await;
    c.check("GET", "/api/v1/messages/{id}", &r);
    let replay = json!({ "accession": chemistry });
    let uri = format!("/api/v1/messages/{first}/replay");
    let r = app.api(&supervisor, Method::POST, &uri, Some(replay)).await;
    c.check("POST", "/api/v1/messages/{id}/replay", &r);
    let uri = format!("/api/v1/messages/{second}/dismiss");
    let r = app.api(&supervisor, Method::POST, &uri, Some(json!({ "reason": "sent twice" }))).await;
    c.check("POST", "/api/v1/messages/{id}/dismiss", &r);
    // The supervisor records a technologist's staff record, authorises and assesses her, and
    // reads and changes the lab's qualification settings.
    let mls = app.sign_in(Role::Technologist, "staff").await;
    let record = json!({ "expected_version": 0, "record": {
        "education": [{ "level": "bachelor", "field": "medical_laboratory_science", "institution": "State University", "accreditation": "naacls", "completed_on": "2015-05-15" }],
        "certifications": [{ "credential": "ascp_mls", "number": "MLS-1", "issued_on": "2015-08-01", "expires_on": "2027-07-31" }],
        "licences": [{ "state": "CA", "number": "CLS 9", "expires_on": "2027-01-31" }],
        "hire_date": "2015-09-01", "disciplines": ["chemistry"] } });
    let staff_uri = format!("/api/v1/staff/{}", mls.actor.name);
    let r = app.api(&supervisor, Method::PUT, &format!("{staff_uri}/record"), Some(record)).await;
    c.check("PUT", "/api/v1/staff/{username}/record", &r);
    let authorise = json!({ "discipline": "chemistry", "authorised_on": "2026-11-01" });
    let r = app
        .api(&supervisor, Method::POST, &format!("{staff_uri}/authorisations"), Some(authorise))
        .await;
    c.check("POST", "/api/v1/staff/{username}/authorisations", &r);
    let assessor = app.sign_in(Role::Supervisor, "assessor").await;
    let qualified = json!({ "expected_version": 0, "record": {
        "education": [{ "level": "master", "field": "chemistry", "institution": "State University", "completed_on": "2010-05-15" }],
        "hire_date": "2011-01-03" } });
    let r = app
        .api(
            &supervisor,
            Method::PUT,
            &format!("/api/v1/staff/{}/record", assessor.actor.name),
            Some(qualified),
        )
        .await;
    c.check("PUT", "/api/v1/staff/{username}/record", &r);
    let element = json!({ "evidence": "observed", "assessor": assessor.actor.name, "assessed_on": "2026-11-20" });
    let assessment = json!({ "test": "K", "outcome": "pass", "elements": vec![element; 6] });
    let r = app
        .api(&supervisor, Method::POST, &format!("{staff_uri}/competency"), Some(assessment))
        .await;
    c.check("POST", "/api/v1/staff/{username}/competency", &r);
    let r = app.api(&mls, Method::GET, &staff_uri, None).await;
    let staff = c.check("GET", "/api/v1/staff/{username}", &r);
    assert_eq!(staff["competency"][0]["test_system"], "K by the manual method");
    let r = app.api(&supervisor, Method::GET, "/api/v1/staff-policy", None).await;
    assert_eq!(c.check("GET", "/api/v1/staff-policy", &r)["enforce"], false);
    let policy = json!({ "enforce": true, "licence_required_from": "high" });
    let r = app.api(&supervisor, Method::PUT, "/api/v1/staff-policy", Some(policy)).await;
    assert_eq!(c.check("PUT", "/api/v1/staff-policy", &r)["licence_required_from"], "high");

    // A student on rotation under the technologist: her schedule, logbook and its CSV, the
    // co-signature list, and the technologist's sign-off.
    let student = app.sign_in(Role::Student, "rotation").await;
    let rotation = json!({ "program": "State University MLS program", "discipline": "chemistry",
        "starts_on": "2026-11-02", "ends_on": "2026-11-27", "supervisor": mls.actor.name });
    let book_uri = format!("/api/v1/staff/{}", student.actor.name);
    let r =
        app.api(&supervisor, Method::POST, &format!("{book_uri}/rotations"), Some(rotation)).await;
    let id = c.check("POST", "/api/v1/staff/{username}/rotations", &r)["id"].as_i64().unwrap();
    let r = app.api(&student, Method::GET, &format!("{book_uri}/logbook"), None).await;
    assert_eq!(c.check("GET", "/api/v1/staff/{username}/logbook", &r)["rotations"][0]["id"], id);
    let r = app.api(&student, Method::GET, &format!("{book_uri}/logbook/csv"), None).await;
    c.check("GET", "/api/v1/staff/{username}/logbook/csv", &r);
    let r = app.api(&mls, Method::GET, "/api/v1/cosignatures", None).await;
    c.check("GET", "/api/v1/cosignatures", &r);
    let r = app.api(&mls, Method::POST, &format!("{book_uri}/rotations/{id}/sign-off"), None).await;
    let signed = c.check("POST", "/api/v1/staff/{username}/rotations/{id}/sign-off", &r);
    assert_eq!(signed["rotations"][0]["signed_off_by"], mls.actor.name);

    let missed: Vec<_> = c.operations().difference(&c.succeeded).cloned().collect();
    assert!(missed.is_empty(), "documented operations this test did not call: {missed:?}");
}

#[tokio::test]
async fn refusals_have_the_documented_status_and_the_one_error_shape() {
    let app = app().await;
    let mut c = Contract::load(&app).await;
    let technician =
        app.lab.create_api_key(&Actor::system(), "bench", Role::Technician).await.unwrap();
    let desk = app.lab.create_api_key(&Actor::system(), "desk", Role::Technologist).await.unwrap();

    // No key at all, and a key that does not exist: 401.
    let r = app.send(Request::builder().uri("/api/v1/worklist").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    c.check("GET", "/api/v1/worklist", &r);
    let r = call(&app, "cuv_not-a-key", Method::GET, "/api/v1/review-queue", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    c.check("GET", "/api/v1/review-queue", &r);

    // A technician may not edit the catalog: 403.
    let save = json!({ "expected_version": 0, "definition": { "code": "K", "name": "K", "result_type": "numeric" } });
    let r = call(&app, &technician, Method::PUT, "/api/v1/catalog/tests/K", Some(save)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    c.check("PUT", "/api/v1/catalog/tests/{code}", &r);
    let add = json!({ "synonym": "+ve", "coded_value": "Positive" });
    let r = call(&app, &technician, Method::POST, "/api/v1/catalog/tests/UNIT/synonyms", Some(add))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    c.check("POST", "/api/v1/catalog/tests/{code}/synonyms", &r);

    // Unknown things: 404, also for a route the API does not have.
    let r = call(&app, &technician, Method::GET, "/api/v1/patients/999999", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    c.check("GET", "/api/v1/patients/{id}", &r);
    let r = call(&app, &technician, Method::GET, "/api/v1/no-such-thing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("openapi.json"));

    // What does not parse: 400 — a body that is not JSON, an id that is not a number.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/patients")
        .header(header::AUTHORIZATION, format!("Bearer {desk}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"mrn\": "))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    c.check("POST", "/api/v1/patients", &r);
    let r = call(&app, &desk, Method::GET, "/api/v1/patients/seven", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    c.check("GET", "/api/v1/patients/{id}", &r);

    // A body sent as a form: 415.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/patients")
        .header(header::AUTHORIZATION, format!("Bearer {desk}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("mrn=1"))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
    c.check("POST", "/api/v1/patients", &r);

    // JSON of the wrong shape, and an invalid value: 422 naming the field.
    let r =
        call(&app, &desk, Method::POST, "/api/v1/release", Some(json!({ "tests": "all" }))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    c.check("POST", "/api/v1/release", &r);
    let body = json!({ "mrn": "OA200", "family_name": "Contract", "given_name": "Bo", "birth_date": "not a date", "sex": "M" });
    let r = call(&app, &desk, Method::POST, "/api/v1/patients", Some(body)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = c.check("POST", "/api/v1/patients", &r);
    assert_eq!(error["error"]["fields"][0]["field"], "birth_date", "{error}");

    // The same MRN twice: 422 on the MRN.
    let body = json!({ "mrn": "OA300", "family_name": "Twice", "given_name": "Cy", "birth_date": "1970-01-01", "sex": "U" });
    let r = call(&app, &desk, Method::POST, "/api/v1/patients", Some(body.clone())).await;
    c.check("POST", "/api/v1/patients", &r);
    let r = call(&app, &desk, Method::POST, "/api/v1/patients", Some(body)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(c.check("POST", "/api/v1/patients", &r)["error"]["fields"][0]["field"], "mrn");
}

#[tokio::test]
async fn text_with_a_nul_character_is_refused_before_it_reaches_the_database() {
    // PostgreSQL cannot store NUL in text; the API refuses it as invalid input, in a body,
    // a query string or a path, instead of failing on the server.
    let app = app().await;
    let mut c = Contract::load(&app).await;
    let key = app.lab.create_api_key(&Actor::system(), "k", Role::Technologist).await.unwrap();

    let body = json!({ "mrn": "OA400", "family_name": "Nul\u{0}", "given_name": "Di", "birth_date": "1970-01-01", "sex": "F" });
    let r = call(&app, &key, Method::POST, "/api/v1/patients", Some(body)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(
        c.check("POST", "/api/v1/patients", &r)["error"]["fields"][0]["field"],
        "family_name"
    );

    let r = call(&app, &key, Method::GET, "/api/v1/patients?q=OA%00", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    c.check("GET", "/api/v1/patients", &r);

    let r = call(&app, &key, Method::GET, "/api/v1/catalog/tests/K%00", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    c.check("GET", "/api/v1/catalog/tests/{code}", &r);
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = app().await;
    let c = Contract::load(&app).await;
    let key = app.lab.create_api_key(&Actor::system(), "k", Role::Technologist).await.unwrap();
    let documented = c.operations();
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let uri =
            path.replace("{id}", "1").replace("{accession}", "26-0000001-7").replace("{code}", "K");
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let r = call(&app, &key, method.clone(), &uri, Some(json!({}))).await;
            if documented.contains(&(method.to_string(), path.clone())) {
                assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                let unrouted =
                    r.status == StatusCode::NOT_FOUND && r.body.contains("no such API route");
                assert!(!unrouted, "{method} {path} is documented but not routed");
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented: {}",
                    r.body
                );
            }
        }
    }
}

#[tokio::test]
async fn every_link_leads_to_a_documented_operation_and_one_of_its_parameters() {
    let app = app().await;
    let c = Contract::load(&app).await;
    let mut by_id = std::collections::BTreeMap::new();
    for item in c.doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            by_id.insert(op["operationId"].as_str().unwrap().to_owned(), op.clone());
        }
    }
    let mut links = 0;
    for op in by_id.values() {
        for response in op["responses"].as_object().unwrap().values() {
            for (name, link) in
                response.get("links").and_then(Value::as_object).into_iter().flatten()
            {
                links += 1;
                let target = &by_id[link["operationId"].as_str().unwrap()];
                for param in link["parameters"].as_object().unwrap().keys() {
                    let known = target["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == param.as_str());
                    assert!(known, "link {name} sets {param}, which its target does not take");
                }
            }
        }
    }
    assert!(links > 0, "the document links an order to its specimens");
}
