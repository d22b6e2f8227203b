//! How a target file says the final state is read back: by id, by a
//! paged list, or by a SQL count.

use serde::{Deserialize, Serialize};

/// How to read the final state back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    /// Each acknowledged resource by id.
    #[serde(default)]
    pub get: Option<ReadGet>,
    /// Every resource of a tenant, to count resources per key.
    #[serde(default)]
    pub list: Option<ReadList>,
    /// A count query on the service's database (a side-effect oracle).
    #[serde(default)]
    pub sql: Option<ReadSql>,
}

/// `GET` by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadGet {
    /// Path template (`{id}`, `{tenant}`, `{user}`).
    pub path: String,
    /// JSON pointer to the resource in the body.
    #[serde(default)]
    pub resource: String,
    /// Whether the resource reads back exactly as the creation answered it
    /// (after `volatile`); otherwise only its existence is checked.
    #[serde(default)]
    pub same_shape: bool,
    /// Statuses meaning "no such resource".
    #[serde(default = "not_found")]
    pub missing: Vec<u16>,
}

fn not_found() -> Vec<u16> {
    vec![404]
}

/// How a list is paged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    /// One page holds everything.
    #[default]
    None,
    /// `next` points at an opaque cursor, sent back as `param`.
    Cursor,
    /// `next` points at the next page's URL (absolute or a path).
    NextLink,
    /// Pages numbered from `start`, sent as `param`, until one is empty.
    Page,
}

/// Pagination of a list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// Scheme.
    #[serde(default)]
    pub kind: PageKind,
    /// Query parameter for the cursor or page number.
    #[serde(default)]
    pub param: Option<String>,
    /// JSON pointer to the cursor or next link.
    #[serde(default)]
    pub next: Option<String>,
    /// First page number.
    #[serde(default = "one")]
    pub start: u64,
}

fn one() -> u64 {
    1
}
fn two_hundred() -> u32 {
    200
}

/// A list of a tenant's resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadList {
    /// Path template (`{tenant}`, `{user}`).
    pub path: String,
    /// JSON pointer to the array of items.
    #[serde(default)]
    pub items: String,
    /// JSON pointer, in an item, to its id.
    pub id: String,
    /// JSON pointer, in an item, to its idempotency key. Without it,
    /// items are matched to keys by the form's `name` field.
    #[serde(default)]
    pub key: Option<String>,
    /// Paging.
    #[serde(default)]
    pub pagination: Pagination,
    /// Bound on pages read per tenant.
    #[serde(default = "two_hundred")]
    pub max_pages: u32,
}

/// A SQL count per key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSql {
    /// A Postgres URL (usually `${DATABASE_URL}`).
    pub url: String,
    /// A query returning one count, with `{key}`, `{tenant}`, `{user}`,
    /// `{name}` bound as text parameters (cast them: `{tenant}::bigint`).
    pub count: String,
}
