//! Files stored with result versions (an analyzer's PDF report, a histogram image), each
//! kept once by the SHA-256 of its bytes.

use sha2::Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, StoreResult, Tx};

/// A file to store with a result version.
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    /// The ordered test.
    pub ordered_test_id: i64,
    /// The result version it belongs to.
    pub result_version: i64,
    /// What the instrument calls it.
    pub name: &'a str,
    /// Its media type (`application/pdf`).
    pub media_type: &'a str,
    /// SHA-256 of `content`, lower-case hex.
    pub sha256: &'a str,
    /// The file.
    pub content: &'a [u8],
}

/// A stored file of a result version, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttachmentRow {
    /// Internal id.
    pub id: i64,
    /// The ordered test.
    pub ordered_test_id: i64,
    /// The result version it belongs to.
    pub result_version: i64,
    /// What the instrument calls it.
    pub name: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: i64,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

const COLUMNS: &str = "id, ordered_test_id, result_version, name, media_type, size, sha256";

fn from_row(r: &AnyRow) -> StoreResult<AttachmentRow> {
    Ok(AttachmentRow {
        id: r.try_get("id")?,
        ordered_test_id: r.try_get("ordered_test_id")?,
        result_version: r.try_get("result_version")?,
        name: r.try_get("name")?,
        media_type: r.try_get("media_type")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
    })
}

impl Tx {
    /// Stores a result version's file: its bytes once per content (a file stored before is
    /// not written again), and the version's reference to them.
    pub async fn insert_attachment(&mut self, a: &NewAttachment<'_>) -> StoreResult<i64> {
        let size = i64::try_from(a.content.len()).expect("a file in memory fits an i64");
        sqlx::query(
            "INSERT INTO attachment_content (sha256, size, content) VALUES ($1, $2, $3) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(a.sha256)
        .bind(size)
        .bind(a.content.to_vec())
        .execute(self.conn())
        .await?;
        Ok(sqlx::query_scalar(
            "INSERT INTO result_attachment (ordered_test_id, result_version, name, media_type, size, sha256) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(a.ordered_test_id)
        .bind(a.result_version)
        .bind(a.name)
        .bind(a.media_type)
        .bind(size)
        .bind(a.sha256)
        .fetch_one(self.conn())
        .await?)
    }
}

impl Store {
    /// The files of every result version of these tests, oldest first.
    pub async fn attachments_of_tests(&self, test_ids: &[i64]) -> StoreResult<Vec<AttachmentRow>> {
        if test_ids.is_empty() {
            return Ok(vec![]);
        }
        // Ids are integers we produced, so inlining them is safe and keeps one statement.
        let ids: Vec<String> = test_ids.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM result_attachment WHERE ordered_test_id IN ({}) \
             ORDER BY ordered_test_id, result_version",
            ids.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        rows.iter().map(from_row).collect()
    }

    /// One stored file with its bytes. Bytes whose SHA-256 is not the one they are stored
    /// under were changed outside Cuvette: corrupt, never served as the instrument's file.
    pub async fn attachment(&self, id: i64) -> StoreResult<(AttachmentRow, Vec<u8>)> {
        let sql = format!("SELECT {COLUMNS} FROM result_attachment WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.reader())
            .await?
            .ok_or(StoreError::NotFound("attachment"))?;
        let attachment = from_row(&row)?;
        let content: Vec<u8> =
            sqlx::query_scalar("SELECT content FROM attachment_content WHERE sha256 = $1")
                .bind(&attachment.sha256)
                .fetch_optional(self.reader())
                .await?
                .ok_or(StoreError::NotFound("attachment content"))?;
        let sha256: String =
            sha2::Sha256::digest(&content).iter().map(|b| format!("{b:02x}")).collect();
        if sha256 != attachment.sha256 {
            return Err(StoreError::Corrupt {
                table: "attachment_content",
                row: attachment.id,
                column: "content",
                value: format!("bytes with SHA-256 {sha256}"),
            });
        }
        Ok((attachment, content))
    }
}
