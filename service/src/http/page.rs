//! A list page bounded in bytes as well as in agents: agents are added in
//! id order until `limit` of them or `LIST_PAGE_MAX_BYTES` of their JSON,
//! whichever comes first; a page always holds at least one agent, so
//! paging always progresses. Agents are fetched in batches of at most
//! [`BATCH`], so a page of large agents never loads far more than it
//! sends.

use crate::domain::agent::{Agent, json_len};
use crate::store::{Store, StoreError};

/// Most agents fetched from the store in one call.
pub const BATCH: u32 = 100;

/// One page and whether more agents follow it.
#[derive(Debug)]
pub struct Page {
    /// The agents, by id.
    pub agents: Vec<Agent>,
    /// The cursor of the next page, if any: the last id sent.
    pub next_cursor: Option<String>,
}

/// Up to `limit` agents of `organization_id` after `after`, in at most
/// `max_bytes` of JSON (or one agent, if the first alone is larger).
pub async fn fetch(
    store: &dyn Store,
    organization_id: i64,
    after: Option<i64>,
    limit: u32,
    max_bytes: usize,
) -> Result<Page, StoreError> {
    let mut agents: Vec<Agent> = Vec::new();
    let mut bytes = 0;
    let mut cursor = after;
    loop {
        let wanted = (limit - agents.len() as u32).min(BATCH) + 1;
        let batch = store.agents(organization_id, cursor, wanted).await?;
        let exhausted = batch.len() < wanted as usize;
        for agent in batch {
            let size = json_len(&agent) + 1;
            if agents.len() == limit as usize || (!agents.is_empty() && bytes + size > max_bytes) {
                let next_cursor = agents.last().map(|a| a.id.to_string());
                return Ok(Page { agents, next_cursor });
            }
            bytes += size;
            cursor = Some(agent.id);
            agents.push(agent);
        }
        if exhausted {
            return Ok(Page {
                agents,
                next_cursor: None,
            });
        }
    }
}
