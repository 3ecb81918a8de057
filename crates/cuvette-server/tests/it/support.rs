//! An in-process Cuvette with its staff signed in, and a small HTTP client.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cuvette_app::{
    Actor, FixedClock, IdentityCheck, Lab, LabConfig, NewUser, PlaceOrder, RegisterPatient,
};
use cuvette_domain::Role;
use cuvette_server::{AppState, ServerConfig, router};
use cuvette_testkit::TestDb;
use serde_json::Value;
use tower::ServiceExt;

/// Every member of staff's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running Cuvette.
pub struct App {
    pub lab: Arc<Lab>,
    pub clock: Arc<FixedClock>,
    router: Router,
    /// The test's database, for fixtures no use case makes (`fixtures.rs`).
    pub db: TestDb,
}

/// A signed-in browser: its session cookie and CSRF token.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    pub actor: Actor,
}

/// A response.
pub struct Reply {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn app() -> App {
    let db = TestDb::create().await;
    let database = cuvette_app::Database::open(db.url()).await.unwrap();
    app_on(db, database).await
}

/// A running Cuvette with the lab's settings changed from the defaults.
pub async fn app_with(config: LabConfig) -> App {
    let db = TestDb::create().await;
    let database = cuvette_app::Database::open(db.url()).await.unwrap();
    app_configured(db, database, config).await
}

/// A running Cuvette on a database already opened.
pub async fn app_on(db: TestDb, database: cuvette_app::Database) -> App {
    app_configured(db, database, LabConfig::default()).await
}

async fn app_configured(db: TestDb, database: cuvette_app::Database, config: LabConfig) -> App {
    let clock = Arc::new(FixedClock::new("2026-11-24T08:00:00Z".parse().unwrap()));
    let lab = Arc::new(Lab::open(database, clock.clone(), config).await.unwrap());
    let router = router(AppState { lab: lab.clone(), config: ServerConfig::default() });
    App { lab, clock, router, db }
}

impl App {
    /// Adds a user in `role` (username `<role>-<suffix>`) and signs them in.
    pub async fn sign_in(&self, role: Role, suffix: &str) -> Session {
        let username = format!("{}-{suffix}", role.code().replace('_', "-"));
        let user = NewUser {
            username: username.clone(),
            display_name: format!("{role} {suffix}"),
            role,
            password: PASSWORD.into(),
        };
        self.lab.add_user(&Actor::system(), user).await.unwrap();
        let out = self.lab.login(&username, PASSWORD).await.unwrap();
        Session {
            cookie: format!("cuvette_session={}", out.token),
            csrf: out.csrf_token,
            actor: out.actor,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let location = res.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(res.into_body(), 16 * 1024 * 1024).await.unwrap();
        Reply { status, location, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// A JSON call as a signed-in browser (cookie + X-CSRF-Token).
    pub async fn api(&self, s: &Session, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::COOKIE, &s.cookie)
            .header("x-csrf-token", &s.csrf);
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// A JSON call with a bearer key.
    pub async fn api_key(
        &self,
        key: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// A file (a PDF), as a signed-in browser: its status and bytes.
    pub async fn get_bytes(&self, s: &Session, uri: &str) -> (StatusCode, Vec<u8>) {
        let req = Request::builder()
            .uri(uri)
            .header(header::COOKIE, &s.cookie)
            .body(Body::empty())
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024 * 1024).await.unwrap();
        (status, bytes.to_vec())
    }

    /// A file, as a signed-in browser downloads it: status, headers and the bytes.
    pub async fn get_file(
        &self,
        s: &Session,
        uri: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let req = Request::builder()
            .uri(uri)
            .header(header::COOKIE, &s.cookie)
            .body(Body::empty())
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024 * 1024).await.unwrap();
        (status, headers, bytes.to_vec())
    }

    /// A page, as a signed-in browser.
    pub async fn get(&self, s: &Session, uri: &str) -> Reply {
        self.send(
            Request::builder()
                .uri(uri)
                .header(header::COOKIE, &s.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// A form post, as a signed-in browser; `csrf` is added.
    pub async fn post_form(&self, s: &Session, uri: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf", s.csrf.as_str())];
        all.extend_from_slice(fields);
        let body =
            all.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::COOKIE, &s.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }
}

pub fn enc(s: &str) -> String {
    const FORM: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, FORM).to_string()
}

impl App {
    /// `patient` registered and `tests` ordered by `provider` (routine), collected, and
    /// received after the two-identifier check, each step by a user of its role named with
    /// `suffix`: (patient id, accession number).
    pub async fn a_received_specimen(
        &self,
        suffix: &str,
        patient: RegisterPatient,
        provider: &str,
        tests: &[&str],
    ) -> (i64, String) {
        let lab = &self.lab;
        let phlebotomist = self.sign_in(Role::Phlebotomist, suffix).await.actor;
        let patient = lab.register_patient(&phlebotomist, &patient).await.unwrap();
        let order = PlaceOrder {
            patient_id: patient.id,
            provider: provider.into(),
            priority: "routine".into(),
            tests: tests.iter().map(|t| (*t).to_owned()).collect(),
            clinical_note: String::new(),
            placer_number: None,
        };
        let placed = lab.place_order(&phlebotomist, &order).await.unwrap();
        let accession = placed.specimens[0].accession.clone();
        lab.collect(&phlebotomist, &accession).await.unwrap();
        let assistant = self.sign_in(Role::LabAssistant, suffix).await.actor;
        let check = IdentityCheck {
            mrn: Some(patient.mrn.clone()),
            birth_date: Some(patient.birth_date.clone()),
            family_name: None,
        };
        lab.receive(&assistant, &accession, &check).await.unwrap();
        (patient.id, accession)
    }
}

/// Sends one HL7 message to an MLLP listener of its own serving `app`, and returns the
/// acknowledgement as the listener sent it.
pub async fn send_mllp(app: &App, message: &[u8]) -> cuvette_hl7::Message<'static> {
    use cuvette_hl7::mllp::{MllpDeframer, frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let patience = std::time::Duration::from_secs(10);
    let (listener, addr) =
        cuvette_server::interfaces::mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server = tokio::spawn(cuvette_server::interfaces::mllp::serve(app.lab.clone(), listener));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&frame(message)).await.unwrap();
    let mut deframer = MllpDeframer::new();
    let mut buf = [0u8; 4096];
    let reply = loop {
        if let Some(next) = deframer.next_frame() {
            break next.unwrap();
        }
        let n = tokio::time::timeout(patience, stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the listener closed the connection");
        deframer.push(&buf[..n]);
    };
    server.abort();
    // The acknowledgement is read for the rest of the test; leaking one small buffer per
    // message keeps the parsed view's borrow simple.
    cuvette_hl7::Message::parse(Box::leak(reply.into_boxed_slice())).unwrap()
}
