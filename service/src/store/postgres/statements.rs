//! The statements of one kind of resource, composed once from its table
//! and columns ([`Resource::TABLE`], [`Resource::COLUMNS`]) and, for the
//! two atomic writes, with the key store's write in a CTE:
//!
//! - one step, for a key with no record: the CTE inserts the key already
//!   completed, with an id drawn from the resource table's sequence, and
//!   the resource is inserted with that id only if the key was new
//!   (`INSERT ... ON CONFLICT DO NOTHING RETURNING resource_id` feeding the
//!   resource's `INSERT ... SELECT`). A concurrent insert of the same scope
//!   makes the statement wait for it and then do nothing. One statement,
//!   one round trip, one commit: what an insert without a key costs, plus
//!   the key's row;
//! - completion under a claim: the CTE flips the key from "in progress
//!   under my token" to "completed" with a fresh id, and the resource is
//!   inserted with that id only if the CTE matched, so the resource exists
//!   if and only if the key completed, and a claim that was taken over
//!   inserts nothing (and notifies no one).
//!
//! Any resource whose row can be written by one `INSERT` gets both.
//!
//! Ids come from the resource table's own sequence, named as Postgres
//! names the sequence of an identity or `serial` column `id`
//! ([`sequence`]). Naming it costs nothing at run time: a text literal
//! cast to `regclass` is resolved once, when the statement is prepared,
//! whereas `pg_get_serial_sequence(table, column)` (what these statements
//! used before) is looked up in the catalogs on every execution
//! (docs/benchmarks.md, issue 13, for what it cost).

use crate::store::Resource;

/// Every statement one resource's store runs.
pub(super) struct Statements {
    /// A plain insert. Binds: the resource's columns.
    pub insert: String,
    /// The one-step path ([`one_step_sql`]).
    pub one_step: String,
    /// A completed key's record with the resource it points at: a replay in
    /// one read. Binds: org, user, endpoint, key.
    pub replay: String,
    /// The resource's insert completing a claim, notifying the key's
    /// waiters at commit (`notify.rs`). Binds: the resource's columns,
    /// then org, user, endpoint, key, token, the key's notification tag.
    pub completing: String,
    /// One resource of one tenant. Binds: org, id.
    pub get: String,
    /// A page of a tenant's resources by id, bounded in rows and in bytes
    /// ([`list_sql`]). Binds: org, after, rows, bytes (and the parent, for
    /// a nested resource).
    pub list: String,
}

impl Statements {
    /// The statements of `R`.
    pub(super) fn of<R: Resource>() -> Self {
        let table = R::TABLE;
        let sequence = sequence::<R>();
        let columns = R::COLUMNS.join(", ");
        let values = params(1, R::COLUMNS.len());
        let keys = R::COLUMNS.len() + 1;
        Self {
            insert: format!("INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING *"),
            one_step: one_step_sql::<R>(),
            replay: format!(
                "SELECT r.*, k.fingerprint AS key_fingerprint,
       k.created_at AS key_created_at, k.expires_at AS key_expires_at
  FROM idempotency_keys k
  JOIN {table} r ON r.organization_id = k.organization_id AND r.id = k.resource_id
 WHERE k.organization_id = $1 AND k.user_id = $2 AND k.endpoint = $3 AND k.key = $4"
            ),
            completing: format!(
                "WITH completed AS (
    UPDATE idempotency_keys
       SET resource_id = nextval('{sequence}'),
           lease_token = NULL,
           lease_expires_at = NULL
     WHERE organization_id = ${keys} AND user_id = ${} AND endpoint = ${} AND key = ${}
       AND lease_token = ${}
 RETURNING resource_id, pg_notify('{channel}', ${})
)
INSERT INTO {table} (id, {columns})
SELECT resource_id, {values} FROM completed
RETURNING *",
                keys + 1,
                keys + 2,
                keys + 3,
                keys + 4,
                keys + 5,
                channel = super::notify::CHANNEL,
            ),
            get: format!("SELECT * FROM {table} WHERE organization_id = $1 AND id = $2"),
            list: list_sql::<R>(),
        }
    }
}

/// The one-step statement of `R` (public so that pgbench can run exactly
/// what the service runs). Binds: the resource's columns, then the scope
/// (org, user, endpoint, key), the fingerprint, `created_at` and
/// `expires_at` of the key. No row back means the key has a record and
/// nothing was written (an id was drawn and left unused).
pub fn one_step_sql<R: Resource>() -> String {
    let table = R::TABLE;
    let sequence = sequence::<R>();
    let columns = R::COLUMNS.join(", ");
    let values = params(1, R::COLUMNS.len());
    let key = params(R::COLUMNS.len() + 1, 5);
    let (created_at, expires_at) = (R::COLUMNS.len() + 6, R::COLUMNS.len() + 7);
    format!(
        "WITH completed AS (
    INSERT INTO idempotency_keys
        (organization_id, user_id, endpoint, key, fingerprint, resource_id, created_at, expires_at)
    VALUES ({key}, nextval('{sequence}'), ${created_at}, ${expires_at})
    ON CONFLICT ON CONSTRAINT idempotency_keys_scope DO NOTHING
    RETURNING resource_id
)
INSERT INTO {table} (id, {columns})
SELECT resource_id, {values} FROM completed
RETURNING *"
    )
}

/// The listing of `R`: the tenant's rows after a cursor, by id, with a
/// running sum of their size as JSON (`row_to_json`, plus one byte of
/// separator each), cut where the sum passes the byte bound (the first
/// row is always kept, so paging progresses). The inner `LIMIT` bounds
/// the rows Postgres reads and the outer filter what it sends: rows past
/// the byte bound are measured inside the database and never cross the
/// wire. `page_more` says whether a row follows (`lead`), so the caller
/// knows whether there is a next page without asking for one row more.
fn list_sql<R: Resource>() -> String {
    let table = R::TABLE;
    let parent = R::PARENT.map(|p| format!(" AND r.{p} = $5")).unwrap_or_default();
    format!(
        "SELECT * FROM (
    SELECT r.*,
           sum(octet_length(row_to_json(r)::text) + 1) OVER w AS page_bytes,
           row_number() OVER w AS page_row,
           lead(r.id) OVER w IS NOT NULL AS page_more
      FROM {table} r
     WHERE r.organization_id = $1 AND r.id > $2{parent}
    WINDOW w AS (ORDER BY r.id)
     ORDER BY r.id
     LIMIT $3
) page
 WHERE page_row = 1 OR page_bytes <= $4
 ORDER BY id"
    )
}

/// The sequence of `R`'s `id` column: `<table>_id_seq`, the name Postgres
/// gives the sequence of an identity column and of a `serial` one alike
/// (the plain and the partitioned schema use one each). A wrong name fails
/// every statement that draws an id, loudly, in every Postgres test.
fn sequence<R: Resource>() -> String {
    format!("{}_id_seq", R::TABLE)
}

/// `$first, ..., $(first + n - 1)`.
fn params(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::agent::Agent;
    use crate::domain::deployment::Deployment;

    /// Every placeholder from `$1` to the highest is used, none twice more
    /// than needed: a statement whose binds drifted from its text fails here
    /// before it fails in Postgres.
    fn placeholders(sql: &str) -> Vec<usize> {
        let mut found: Vec<usize> = sql
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    #[test]
    fn statements_bind_every_column_and_key_part_once() {
        for (columns, s) in [
            (Agent::COLUMNS.len(), Statements::of::<Agent>()),
            (Deployment::COLUMNS.len(), Statements::of::<Deployment>()),
        ] {
            assert_eq!(placeholders(&s.insert), (1..=columns).collect::<Vec<_>>());
            assert_eq!(placeholders(&s.one_step), (1..=columns + 7).collect::<Vec<_>>());
            assert_eq!(placeholders(&s.completing), (1..=columns + 6).collect::<Vec<_>>());
            assert_eq!(placeholders(&s.replay), [1, 2, 3, 4]);
        }
        assert_eq!(placeholders(&Statements::of::<Agent>().list), [1, 2, 3, 4]);
        assert_eq!(placeholders(&Statements::of::<Deployment>().list), [1, 2, 3, 4, 5]);
    }
}
