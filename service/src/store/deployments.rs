//! How deployments are stored: their insert, for both backends.

use idemproof_models::Timestamp;
use serde_json::Value;

use super::{PgQuery, Resource};
use crate::domain::deployment::{Deployment, NewDeployment};

impl Resource for Deployment {
    type New = NewDeployment;
    const TABLE: &'static str = "deployments";
    const COLUMNS: &'static [&'static str] = &[
        "organization_id",
        "agent_id",
        "user_id",
        "channel",
        "settings",
        "idempotency_key",
        "created_at",
    ];
    const PARENT: Option<&'static str> = Some("agent_id");

    fn bind<'q>(new: &'q NewDeployment, now: Timestamp, query: PgQuery<'q, Self>) -> PgQuery<'q, Self> {
        query
            .bind(new.organization_id)
            .bind(new.agent_id)
            .bind(new.user_id)
            .bind(&new.spec.channel)
            .bind(Value::Object(new.spec.settings.clone()))
            .bind(&new.idempotency_key)
            .bind(now)
    }

    fn build(id: i64, new: &NewDeployment, now: Timestamp) -> Self {
        Deployment {
            id,
            organization_id: new.organization_id,
            agent_id: new.agent_id,
            user_id: new.user_id,
            channel: new.spec.channel.clone(),
            settings: Value::Object(new.spec.settings.clone()),
            idempotency_key: new.idempotency_key.clone(),
            created_at: now,
        }
    }

    fn id(&self) -> i64 {
        self.id
    }

    fn organization_id(&self) -> i64 {
        self.organization_id
    }

    fn parent_id(&self) -> Option<i64> {
        Some(self.agent_id)
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}
