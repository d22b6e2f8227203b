//! `db-error` on Postgres: the database itself rejects the next inserts of
//! the resource under attack with SQLSTATE 40001 (serialization_failure),
//! as contention, a failover or a constraint added by a migration would. A
//! trigger the harness installs on its table (`agents`, `deployments`), in
//! the scenario's own throw-away database
//! (connecting directly, not through its proxy), counts inserts with a
//! sequence: unlike a table, a sequence is not rolled back with the
//! failing transaction, so exactly `n` inserts fail, whichever replica and
//! whichever path (one-step or claimed) runs them.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Installs (or re-arms) the trigger on `table`: its next `n` inserts fail.
pub async fn fail_next(url: &str, table: &str, n: u32) -> anyhow::Result<()> {
    let sql = format!(
        "CREATE SEQUENCE IF NOT EXISTS idemproof_fault_inserts;
         SELECT setval('idemproof_fault_inserts', 1, false);
         CREATE OR REPLACE FUNCTION idemproof_fault_insert() RETURNS trigger
         LANGUAGE plpgsql AS $fn$
         BEGIN
           IF nextval('idemproof_fault_inserts') <= {n} THEN
             RAISE EXCEPTION 'insert failure injected by the idemproof harness'
               USING ERRCODE = 'serialization_failure';
           END IF;
           RETURN NEW;
         END
         $fn$;
         DROP TRIGGER IF EXISTS idemproof_fault_insert ON {table};
         CREATE TRIGGER idemproof_fault_insert BEFORE INSERT ON {table}
           FOR EACH ROW EXECUTE FUNCTION idemproof_fault_insert();"
    );
    run(url, &sql).await
}

/// Removes the trigger from `table`: inserts succeed again.
pub async fn disarm(url: &str, table: &str) -> anyhow::Result<()> {
    run(
        url,
        &format!("DROP TRIGGER IF EXISTS idemproof_fault_insert ON {table}"),
    )
    .await
}

async fn run(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}
