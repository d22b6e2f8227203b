//! How agents are stored: their insert, for both backends. Everything else
//! (the one-step path, completion under a claim, reads) comes from the
//! generic stores.

use idemproof_models::Timestamp;
use serde_json::Value;

use super::{PgQuery, Resource};
use crate::domain::agent::{Agent, NewAgent};

impl Resource for Agent {
    type New = NewAgent;
    const TABLE: &'static str = "agents";
    const COLUMNS: &'static [&'static str] = &[
        "organization_id",
        "user_id",
        "name",
        "description",
        "system_prompt",
        "config",
        "widget_config",
        "agent_type",
        "industry",
        "auto_optimize",
        "idempotency_key",
        "created_at",
    ];

    fn bind<'q>(new: &'q NewAgent, now: Timestamp, query: PgQuery<'q, Self>) -> PgQuery<'q, Self> {
        let spec = &new.spec;
        query
            .bind(new.organization_id)
            .bind(new.user_id)
            .bind(&spec.name)
            .bind(&spec.description)
            .bind(&spec.system_prompt)
            .bind(Value::Object(spec.config.clone()))
            .bind(Value::Object(spec.widget_config.clone()))
            .bind(&spec.agent_type)
            .bind(&spec.industry)
            .bind(spec.auto_optimize)
            .bind(&new.idempotency_key)
            .bind(now)
    }

    fn build(id: i64, new: &NewAgent, now: Timestamp) -> Self {
        let spec = new.spec.clone();
        Agent {
            id,
            organization_id: new.organization_id,
            user_id: new.user_id,
            name: spec.name,
            description: spec.description,
            system_prompt: spec.system_prompt,
            config: spec.config.into(),
            widget_config: spec.widget_config.into(),
            agent_type: spec.agent_type,
            industry: spec.industry,
            auto_optimize: spec.auto_optimize,
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

    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}
