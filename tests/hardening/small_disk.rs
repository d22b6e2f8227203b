//! A Postgres container whose test database lives on a disk small enough
//! to fill: a 48 MB tmpfs mounted in the container (no privileges needed),
//! holding a tablespace the database is created in. Its WAL and the other
//! databases stay on the container's main volume, as a data disk apart
//! from the WAL disk would be. Filling it is honest: rows of incompressible
//! filler until Postgres itself refuses to extend a file.

use std::time::Duration;

use idemproof_harness::postgres::{DEFAULT_IMAGE, IMAGE_VAR};
use sqlx::{Connection, Executor, PgConnection};
use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Where the small disk is mounted in the container.
const MOUNT: &str = "/small";
/// Its size: room for a fresh database (about 8 MB) and some filler.
const SIZE: &str = "48m";
/// SQLSTATE `disk_full`: "could not extend file ...: No space left on device".
const DISK_FULL: &str = "53100";

/// The container and where to reach it.
pub struct SmallDisk {
    container: ContainerAsync<GenericImage>,
    port: u16,
}

impl SmallDisk {
    /// Starts the container (from the image the other Postgres tests use)
    /// and waits until it accepts connections.
    pub async fn start() -> Self {
        let image = std::env::var(IMAGE_VAR).unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
        let (name, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
        let container = GenericImage::new(name, tag)
            .with_exposed_port(5432.tcp())
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            ))
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            .with_mount(Mount::tmpfs_mount(MOUNT).with_size(SIZE).with_mode(0o1777))
            .with_cmd(["postgres", "-c", "fsync=off"])
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .unwrap_or_else(|e| panic!("could not start a Postgres container from `{image}`: {e}"));
        let port = container
            .get_host_port_ipv4(5432.tcp())
            .await
            .expect("the published port");
        let disk = Self { container, port };
        // Bounded: the image's first start runs its init scripts first.
        for _ in 0..300 {
            if let Ok(conn) = PgConnection::connect(&disk.url("postgres")).await {
                let _ = conn.close().await;
                return disk;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the small-disk Postgres never accepted connections");
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates the `small` tablespace on the small disk and a database in
    /// it; returns the database's URL.
    pub async fn database_url(&self) -> String {
        let mut admin = PgConnection::connect(&self.url("postgres")).await.expect("admin");
        // The tablespace directory must exist and belong to the server's
        // user: the server makes it itself (superuser's COPY TO PROGRAM).
        // The copy has no rows, so nothing is written to the program's
        // stdin: a program that exits without reading it would otherwise
        // race the write and fail the COPY with a broken pipe.
        for sql in [
            format!("COPY (SELECT 1 WHERE false) TO PROGRAM 'mkdir -p {MOUNT}/pg'"),
            format!("CREATE TABLESPACE small LOCATION '{MOUNT}/pg'"),
            "CREATE DATABASE full_disk TABLESPACE small".to_owned(),
        ] {
            admin
                .execute(sql.as_str())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let _ = admin.close().await;
        self.url("full_disk")
    }

    /// Fills the disk through `conn` (on the small-disk database): rows of
    /// incompressible filler, stored out of line without compression,
    /// first of 1 MB, then of 8 kB, each size until Postgres refuses to
    /// extend a file; what is left is less than one page. Returns how many
    /// rows fitted. Bounded: the disk holds at most 48 MB.
    pub async fn fill(&self, conn: &mut PgConnection) -> usize {
        for sql in [
            "CREATE TABLE filler (chunk bytea)",
            "ALTER TABLE filler ALTER COLUMN chunk SET STORAGE EXTERNAL",
        ] {
            conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let mut rows = 0;
        for (bytes, most) in [(1 << 20, 64), (8 << 10, 1024)] {
            let mut refused = false;
            for _ in 0..most {
                // md5 of random text, decoded: 16 random bytes per md5,
                // which no compression shrinks.
                let insert = sqlx::query(
                    "INSERT INTO filler SELECT string_agg(decode(md5(random()::text), 'hex'), '') FROM generate_series(1, $1)",
                )
                .bind(i64::from(bytes / 16))
                .execute(&mut *conn)
                .await;
                match insert {
                    Ok(_) => rows += 1,
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(DISK_FULL) => {
                        refused = true;
                        break;
                    }
                    Err(e) => panic!("filling the disk: {e}"),
                }
            }
            assert!(refused, "{most} rows of {bytes} bytes did not fill a {SIZE} disk");
        }
        rows
    }

    /// Frees the disk: dropping the filler unlinks its files at commit.
    pub async fn free(&self, conn: &mut PgConnection) {
        conn.execute("DROP TABLE filler").await.expect("drop the filler");
    }

    /// Removes the container.
    pub async fn remove(self) {
        let _ = self.container.rm().await;
    }
}
