//! What sqlx's `Any` driver costs the store, measured against the native drivers in the same
//! run, on the same rows: the evidence for the "Store: sqlx Any — decision" section of
//! ARCHITECTURE.md.
//!
//! ```text
//! cargo run --release -p cuvette-store --example any_vs_native -- \
//!     --database postgres://postgres@127.0.0.1:5432/test [--rows 100000] [--repeat 5]
//! ```
//!
//! 1. Decode: `--rows` result-shaped rows (the `result` table's column types: integers, text,
//!    nullable times) read with `fetch_all` and mapped by column name, as the store's row
//!    mappings do — through `AnyPool` and through `PgPool`; and the same on SQLite through
//!    `AnyPool` and `SqlitePool`.
//! 2. Bulk insert on PostgreSQL: the same rows written the way `Tx::insert_results` writes
//!    them today (multi-row `INSERT … VALUES`, 100 rows a statement, through `Any`), the same
//!    statement through `PgPool`, and one `INSERT … SELECT FROM UNNEST($1::bigint[], …)` per
//!    10 000 rows through `PgPool` (`Any` cannot bind an array).
//!
//! Each figure is the median of `--repeat` runs, the variants interleaved so that a noisy
//! neighbour on the machine hits them alike. Ratios are against the native driver.

use std::time::{Duration, Instant};

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AnyPool, PgPool, Row, SqlitePool};

/// One result-shaped row, as the store maps it.
#[derive(Debug, Clone, PartialEq)]
struct Row10 {
    id: i64,
    ordered_test_id: i64,
    version: i64,
    value_text: String,
    report_text: String,
    unit: String,
    flags: String,
    entered_at: i64,
    released_at: Option<i64>,
    reasons: String,
}

/// The rows of `Tx::insert_results`'s one statement.
const ROWS_PER_INSERT: usize = 100;
/// The rows of one `UNNEST` statement.
const ROWS_PER_UNNEST: usize = 10_000;

const COLUMNS: &str = "id, ordered_test_id, version, value_text, report_text, unit, flags, entered_at, released_at, reasons";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut database, mut rows, mut repeat) = (None, 100_000usize, 5usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--database" => database = args.next(),
            "--rows" => rows = args.next().ok_or("--rows N")?.parse()?,
            "--repeat" => repeat = args.next().ok_or("--repeat N")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let database = database.ok_or("--database postgres://… is required")?;
    sqlx::any::install_default_drivers();
    let data: Vec<Row10> = (0..rows as i64).map(row).collect();
    let table = format!("any_vs_native_{}", std::process::id());

    // PostgreSQL.
    let any_pg = AnyPoolOptions::new().max_connections(1).connect(&database).await?;
    let pg = PgPoolOptions::new().max_connections(1).connect(&database).await?;
    let create = format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, ordered_test_id BIGINT NOT NULL, version BIGINT NOT NULL, \
         value_text TEXT NOT NULL, report_text TEXT NOT NULL, unit TEXT NOT NULL, flags TEXT NOT NULL, \
         entered_at BIGINT NOT NULL, released_at BIGINT, reasons TEXT NOT NULL)"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create.clone())).execute(&pg).await?;
    let outcome = postgres(&any_pg, &pg, &table, &data, repeat).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&pg).await?;
    let pg_figures = outcome?;

    // SQLite, a file in the temporary directory (WAL, as the store opens it).
    let dir = std::env::temp_dir().join(&table);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("bench.sqlite3");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let lite = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&lite).await?;
    let any_lite = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
    let outcome = sqlite(&any_lite, &lite, &table, &data, repeat).await;
    lite.close().await;
    any_lite.close().await;
    std::fs::remove_dir_all(&dir).ok();
    let lite_figures = outcome?;

    println!("rows {rows}, median of {repeat}, same run");
    let line = |what: &str, t: Duration, base: Duration| {
        println!(
            "  {what:<52} {:>9.1} ms  {:>5.2}× native  ({:.2} µs/row)",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / base.as_secs_f64(),
            t.as_secs_f64() * 1e6 / rows as f64
        );
    };
    let [pg_decode_any, pg_decode, pg_values_any, pg_values, pg_unnest] = pg_figures;
    let [lite_decode_any, lite_decode] = lite_figures;
    println!("PostgreSQL decode (fetch_all + map by name)");
    line("PgPool", pg_decode, pg_decode);
    line("AnyPool", pg_decode_any, pg_decode);
    println!("SQLite decode (fetch_all + map by name)");
    line("SqlitePool", lite_decode, lite_decode);
    line("AnyPool", lite_decode_any, lite_decode);
    println!("PostgreSQL bulk insert, one transaction");
    line("PgPool, VALUES ×100 rows a statement", pg_values, pg_values);
    line("AnyPool, VALUES ×100 rows a statement (today)", pg_values_any, pg_values);
    line("PgPool, UNNEST ×10 000 rows a statement", pg_unnest, pg_values);
    Ok(())
}

fn row(i: i64) -> Row10 {
    Row10 {
        id: i + 1,
        ordered_test_id: i / 8 + 1,
        version: 1,
        value_text: format!("{}.{}", 3 + i % 3, i % 10),
        report_text: format!("{}.{}", 3 + i % 3, i % 10),
        unit: "mmol/L".into(),
        flags: if i % 7 == 0 { "H".into() } else { String::new() },
        entered_at: 1_772_439_300_000_000 + i,
        released_at: (i % 3 != 0).then_some(1_772_439_360_000_000 + i),
        reasons: "[]".into(),
    }
}

/// Maps a row by column name, as the store does (`try_get("…")`), for any driver.
fn map<R: Row>(r: &R) -> Result<Row10, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Row10 {
        id: r.try_get("id")?,
        ordered_test_id: r.try_get("ordered_test_id")?,
        version: r.try_get("version")?,
        value_text: r.try_get("value_text")?,
        report_text: r.try_get("report_text")?,
        unit: r.try_get("unit")?,
        flags: r.try_get("flags")?,
        entered_at: r.try_get("entered_at")?,
        released_at: r.try_get("released_at")?,
        reasons: r.try_get("reasons")?,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Writes `data` into `table` as multi-row VALUES statements through `pool`.
macro_rules! insert_values {
    ($pool:expr, $table:expr, $data:expr) => {{
        let mut tx = $pool.begin().await?;
        for chunk in $data.chunks(ROWS_PER_INSERT) {
            let mut sql = format!("INSERT INTO {} ({COLUMNS}) VALUES ", $table);
            for i in 0..chunk.len() {
                let p = i * 10;
                sql.push_str(if i == 0 { "(" } else { ", (" });
                sql.push_str(
                    &(1..=10).map(|c| format!("${}", p + c)).collect::<Vec<_>>().join(", "),
                );
                sql.push(')');
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.id)
                    .bind(r.ordered_test_id)
                    .bind(r.version)
                    .bind(r.value_text.clone())
                    .bind(r.report_text.clone())
                    .bind(r.unit.clone())
                    .bind(r.flags.clone())
                    .bind(r.entered_at)
                    .bind(r.released_at)
                    .bind(r.reasons.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }};
}

/// Reads every row of `table` through `pool`, checking them against `data`.
macro_rules! decode_all {
    ($pool:expr, $table:expr, $data:expr) => {{
        let sql = format!("SELECT {COLUMNS} FROM {} ORDER BY id", $table);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all($pool).await?;
        let read = rows.iter().map(map).collect::<Result<Vec<_>, _>>()?;
        assert!(read == *$data, "the rows read back are the rows written");
    }};
}

async fn postgres(
    any: &AnyPool,
    pg: &PgPool,
    table: &str,
    data: &[Row10],
    repeat: usize,
) -> Result<[Duration; 5], Box<dyn std::error::Error>> {
    let truncate = format!("TRUNCATE {table}");
    let mut times: [Vec<Duration>; 5] = Default::default();
    for _ in 0..repeat {
        sqlx::raw_sql(sqlx::AssertSqlSafe(truncate.clone())).execute(pg).await?;
        let t = Instant::now();
        insert_values!(any, table, data);
        times[2].push(t.elapsed());

        sqlx::raw_sql(sqlx::AssertSqlSafe(truncate.clone())).execute(pg).await?;
        let t = Instant::now();
        insert_values!(pg, table, data);
        times[3].push(t.elapsed());

        sqlx::raw_sql(sqlx::AssertSqlSafe(truncate.clone())).execute(pg).await?;
        let t = Instant::now();
        insert_unnest(pg, table, data).await?;
        times[4].push(t.elapsed());

        let t = Instant::now();
        decode_all!(any, table, data);
        times[0].push(t.elapsed());
        let t = Instant::now();
        decode_all!(pg, table, data);
        times[1].push(t.elapsed());
    }
    Ok(times.map(median))
}

async fn sqlite(
    any: &AnyPool,
    lite: &SqlitePool,
    table: &str,
    data: &[Row10],
    repeat: usize,
) -> Result<[Duration; 2], Box<dyn std::error::Error>> {
    insert_values!(lite, table, data);
    let mut times: [Vec<Duration>; 2] = Default::default();
    for _ in 0..repeat {
        let t = Instant::now();
        decode_all!(any, table, data);
        times[0].push(t.elapsed());
        let t = Instant::now();
        decode_all!(lite, table, data);
        times[1].push(t.elapsed());
    }
    Ok(times.map(median))
}

/// One statement per [`ROWS_PER_UNNEST`] rows: each column bound as one array.
async fn insert_unnest(
    pg: &PgPool,
    table: &str,
    data: &[Row10],
) -> Result<(), Box<dyn std::error::Error>> {
    let sql = format!(
        "INSERT INTO {table} ({COLUMNS}) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], \
         $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[])"
    );
    let mut tx = pg.begin().await?;
    for chunk in data.chunks(ROWS_PER_UNNEST) {
        let col = |f: fn(&Row10) -> i64| chunk.iter().map(f).collect::<Vec<i64>>();
        let text =
            |f: fn(&Row10) -> &String| chunk.iter().map(|r| f(r).clone()).collect::<Vec<_>>();
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(col(|r| r.id))
            .bind(col(|r| r.ordered_test_id))
            .bind(col(|r| r.version))
            .bind(text(|r| &r.value_text))
            .bind(text(|r| &r.report_text))
            .bind(text(|r| &r.unit))
            .bind(text(|r| &r.flags))
            .bind(col(|r| r.entered_at))
            .bind(chunk.iter().map(|r| r.released_at).collect::<Vec<Option<i64>>>())
            .bind(text(|r| &r.reasons))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
