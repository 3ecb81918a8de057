//! The command line as an operator meets it: an ordinary mistake gets one sentence saying what
//! is wrong and what to do, never a debug dump or a backtrace, and a non-zero exit; the audit
//! chain is checked against its signed checkpoints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;

/// A folder of its own for one test, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn new() -> Folder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cuvette-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Folder(dir)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn cuvette(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cuvette"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "1")
        .env_remove("CUVETTE_DATABASE_URL")
        .output()
        .expect("the cuvette binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The failure's one message, after checking it is no debug dump.
fn refusal(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "an ordinary error exits 1: {stderr}");
    for dump in ["Stack backtrace", "Caused by", "panicked", "RUST_BACKTRACE", "Error {", "Os {"] {
        assert!(!stderr.contains(dump), "no debug dump ({dump:?}) for an ordinary error: {stderr}");
    }
    let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| {
        panic!("one line says what went wrong: {stderr}");
    });
    line.to_owned()
}

fn add_user(data: &Path, username: &str, role: &str, password: &str) -> Output {
    cuvette(&[
        "user",
        "add",
        "--data",
        data.to_str().unwrap(),
        "--username",
        username,
        "--name",
        "Ada Mensah",
        "--role",
        role,
        "--password",
        password,
    ])
}

#[test]
fn an_unknown_role_is_refused_with_the_roles_to_choose_from() {
    let folder = Folder::new();
    let line = refusal(&add_user(&folder.0, "amensah", "wizard", "sharp blue pipette"));
    assert!(line.starts_with("error: unknown role \"wizard\": use one of phlebotomist"), "{line}");
}

#[test]
fn a_database_directory_that_cannot_be_made_is_named_with_what_to_do() {
    let line = refusal(&cuvette(&["audit", "verify", "--data", "/proc/cuvette/no-such-lab"]));
    assert!(line.contains("cannot open the database in /proc/cuvette/no-such-lab"), "{line}");
    assert!(line.contains("give the lab's data directory with --data"), "{line}");
}

#[test]
fn a_weak_password_at_the_command_line_is_refused_with_the_rule_it_breaks() {
    let folder = Folder::new();
    let line = refusal(&add_user(&folder.0, "amensah", "technician", "aaaaaaaaaaaa"));
    assert!(line.contains("a character or short pattern repeated"), "{line}");
    let line = refusal(&add_user(&folder.0, "amensah", "technician", "amensah-at-work"));
    assert!(line.contains("contains the user ID"), "{line}");
}

#[test]
fn a_checkpoint_from_the_command_line_lets_audit_verify_name_a_cut_tail() {
    let folder = Folder::new();
    let data = folder.0.join("lab");
    let key = folder.0.join("audit.key");
    let checkpoints = folder.0.join("checkpoints.jsonl");
    let anchor = [
        "--audit-key",
        key.to_str().unwrap(),
        "--audit-checkpoints",
        checkpoints.to_str().unwrap(),
    ];
    let data_args = ["--data", data.to_str().unwrap()];
    for (user, role) in [("amensah", "technician"), ("bkoch", "technologist")] {
        let out = add_user(&data, user, role, "sharp blue pipette");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = cuvette(&[&["audit", "checkpoint"][..], &data_args, &anchor].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Checkpoint written to"), "{}", text(&out.stdout));

    let out = cuvette(&[&["audit", "verify"][..], &data_args, &anchor].concat());
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("against 1 signed checkpoint(s)"), "{}", text(&out.stdout));

    // Someone with write access to the database file removes the newest event and its head.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!("sqlite://{}", data.join("cuvette.sqlite3").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for sql in [
            "DROP TRIGGER audit_event_no_delete",
            "DELETE FROM audit_event WHERE seq = (SELECT MAX(seq) FROM audit_event)",
            "UPDATE audit_head SET seq = seq - 1, hash = (SELECT hash FROM audit_event WHERE seq = (SELECT MAX(seq) FROM audit_event)) WHERE id = 1",
        ] {
            sqlx::raw_sql(sql).execute(&mut db).await.unwrap();
        }
        db.close().await.unwrap();
    });

    let plain = cuvette(&["audit", "verify", "--data", data.to_str().unwrap()]);
    assert!(plain.status.success(), "without the checkpoints the cut does not show");
    let out = cuvette(&[&["audit", "verify"][..], &data_args, &anchor].concat());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tail missing: checkpoint at seq "), "{stdout}");
    assert!(stdout.contains(" but the chain ends at seq "), "{stdout}");

    let line = refusal(&cuvette(
        &[&["audit", "verify"][..], &data_args, &["--audit-key", key.to_str().unwrap()]].concat(),
    ));
    assert!(line.contains("give both --audit-key and --audit-checkpoints"), "{line}");
}

#[test]
fn the_log_written_to_a_file_or_a_pipe_is_plain_text_without_colour_codes() {
    let folder = Folder::new();
    let data = folder.0.join("lab");
    let out = Command::new(env!("CARGO_BIN_EXE_cuvette"))
        .args(["user", "add", "--data", data.to_str().unwrap(), "--username", "cplain"])
        .args(["--name", "Ada Mensah", "--role", "technician", "--password", "sharp blue pipette"])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .env_remove("CUVETTE_DATABASE_URL")
        .output()
        .expect("the cuvette binary runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(log.contains("DEBUG") || log.contains("INFO"), "the command logged something:\n{log}");
    assert!(!log.contains('\u{1b}'), "no terminal escape codes in a piped log:\n{log:?}");
}
