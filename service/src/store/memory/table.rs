//! One kind of resource in memory, and its [`Resources`] store: the
//! one-step path and completion run the resource's insert inside the claim
//! table's critical section.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use idemproof_models::{ClaimTable, CompleteError, Decision, Fingerprint, Scope, Timestamp, decide};

use super::budget::{Budget, RESOURCES_FULL_RETRY_SECS, ROW_OVERHEAD_BYTES};
use crate::domain::bounds::json_len;
use crate::store::{Lease, Listed, OneStep, PageBound, Resource, Resources, StoreError};

/// The rows of one resource type, by `(organization_id, id)`: per-tenant
/// lookups and ordered listing are both range queries.
pub struct Table<R> {
    rows: Mutex<Rows<R>>,
    /// The store's resource bytes, shared with its other tables.
    budget: Arc<Budget>,
}

struct Rows<R> {
    by_org: BTreeMap<(i64, i64), R>,
    /// The last id handed out (ids start at 1, like a database sequence).
    last_id: i64,
}

impl<R> Table<R> {
    /// An empty table drawing from `budget`.
    pub(super) fn new(budget: Arc<Budget>) -> Self {
        Self {
            rows: Mutex::new(Rows {
                by_org: BTreeMap::new(),
                last_id: 0,
            }),
            budget,
        }
    }
}

impl<R: Resource> Table<R> {
    fn rows(&self) -> MutexGuard<'_, Rows<R>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new row if the budget has room for it ([`StoreError::Full`]
    /// otherwise, with nothing stored and no id used).
    fn insert(&self, new: &R::New, now: Timestamp) -> Result<R, StoreError> {
        let mut rows = self.rows();
        let row = R::build(rows.last_id + 1, new, now);
        if !self.budget.try_reserve(json_len(&row) + ROW_OVERHEAD_BYTES) {
            return Err(StoreError::Full {
                retry_after_secs: RESOURCES_FULL_RETRY_SECS,
            });
        }
        rows.last_id += 1;
        rows.by_org.insert((row.organization_id(), row.id()), row.clone());
        Ok(row)
    }

    /// The row `id` if it belongs to `organization_id`.
    pub fn get(&self, organization_id: i64, id: i64) -> Option<R> {
        self.rows().by_org.get(&(organization_id, id)).cloned()
    }

    /// The row with the lowest id among those `matching`, in any tenant.
    pub fn find(&self, matching: impl Fn(&R) -> bool) -> Option<R> {
        let rows = self.rows();
        rows.by_org
            .values()
            .filter(|r| matching(r))
            .min_by_key(|r| r.id())
            .cloned()
    }

    /// Every row, in every tenant.
    pub fn all(&self) -> Vec<R> {
        self.rows().by_org.values().cloned().collect()
    }

    /// The rows `list` returns, measured exactly (compact JSON) and cloned
    /// only if they are sent.
    fn page(&self, organization_id: i64, parent: Option<i64>, after: Option<i64>, bound: PageBound) -> Listed<R> {
        let start = match after {
            Some(after) => Bound::Excluded((organization_id, after)),
            None => Bound::Included((organization_id, i64::MIN)),
        };
        let rows = self.rows();
        let mut matching = rows
            .by_org
            .range((start, Bound::Included((organization_id, i64::MAX))))
            .map(|(_, r)| r)
            .filter(|r| r.parent_id() == parent)
            .peekable();
        let (mut items, mut bytes) = (Vec::new(), 0);
        while let Some(row) = matching.peek() {
            let size = json_len(*row) + 1;
            if items.len() == bound.rows as usize || (!items.is_empty() && bytes + size > bound.bytes) {
                break;
            }
            bytes += size;
            items.push((*row).clone());
            matching.next();
        }
        let more = matching.peek().is_some();
        Listed { items, more }
    }
}

/// The [`Resources`] store of `R` in memory.
pub(super) struct MemoryResources<R> {
    claims: Arc<ClaimTable<i64>>,
    table: Arc<Table<R>>,
}

impl<R> MemoryResources<R> {
    pub(super) fn new(claims: Arc<ClaimTable<i64>>, table: Arc<Table<R>>) -> Self {
        Self { claims, table }
    }
}

#[async_trait]
impl<R: Resource> Resources<R> for MemoryResources<R> {
    async fn insert(&self, new: &R::New, now: Timestamp) -> Result<R, StoreError> {
        self.table.insert(new, now)
    }

    async fn insert_one_step(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        let mut created = None;
        let stored = self.claims.create_one_step(scope, fingerprint, now, || {
            let row = self.table.insert(new, now)?;
            let id = row.id();
            created = Some(row);
            Ok::<_, StoreError>(id)
        });
        match stored {
            Ok(Some(id)) => created.map(OneStep::Created).ok_or(StoreError::Dangling(id)),
            // A completed record does not change until it expires, so a
            // second look decides as a claim would.
            Ok(None) => Ok(match decide(self.claims.record(scope).as_ref(), &fingerprint, now) {
                Decision::Replay(id) => self
                    .table
                    .get(scope.organization_id, id)
                    .map_or(OneStep::Taken, OneStep::Replayed),
                _ => OneStep::Taken,
            }),
            // No room for the resource: nothing was stored, key included.
            Err(full) => Err(full),
        }
    }

    async fn insert_completing(&self, lease: &Lease, new: &R::New, now: Timestamp) -> Result<R, StoreError> {
        let mut created = None;
        let completed = self.claims.complete(&lease.scope, lease.token, || {
            let row = self.table.insert(new, now)?;
            let id = row.id();
            created = Some(row);
            Ok::<_, StoreError>(id)
        });
        match completed {
            Ok(id) => created.ok_or(StoreError::Dangling(id)),
            Err(CompleteError::NotOwner) => Err(StoreError::LeaseLost),
            // No room for the resource: the claim stays for the caller to
            // release (`Claim::complete` does), and nothing was stored.
            Err(CompleteError::Work(full)) => Err(full),
        }
    }

    async fn get(&self, organization_id: i64, id: i64) -> Result<Option<R>, StoreError> {
        Ok(self.table.get(organization_id, id))
    }

    async fn list(
        &self,
        organization_id: i64,
        parent: Option<i64>,
        after: Option<i64>,
        bound: PageBound,
    ) -> Result<Listed<R>, StoreError> {
        Ok(self.table.page(organization_id, parent, after, bound))
    }
}

#[cfg(test)]
mod tests {
    use idemproof_models::Terms;
    use serde_json::json;

    use super::*;
    use crate::domain::agent::{Agent, CreateEnvelope, NewAgent};
    use crate::domain::deployment::{DeployEnvelope, Deployment, NewDeployment};
    use crate::store::memory::MemoryStore;

    fn agent(organization_id: i64, key: &str) -> NewAgent {
        NewAgent {
            organization_id,
            user_id: 1,
            idempotency_key: Some(key.into()),
            spec: CreateEnvelope::from_json(&json!({"name": "Bot"})).expect("valid").spec,
        }
    }

    /// A row costs its JSON and a fixed overhead of the budget, and a row
    /// the budget has no room for is refused with nothing used.
    #[test]
    fn a_row_reserves_its_json_and_the_overhead() {
        let budget = Arc::new(Budget::new(10_000));
        let table = Table::<Agent>::new(Arc::clone(&budget));
        let row = table.insert(&agent(1, "k"), Timestamp::UNIX_EPOCH).expect("room");
        assert_eq!(budget.used(), json_len(&row) + ROW_OVERHEAD_BYTES);
        let tight = Arc::new(Budget::new(budget.used() * 2 - 1));
        let table = Table::<Agent>::new(Arc::clone(&tight));
        table
            .insert(&agent(1, "a"), Timestamp::UNIX_EPOCH)
            .expect("room for one");
        assert!(matches!(
            table.insert(&agent(1, "b"), Timestamp::UNIX_EPOCH),
            Err(StoreError::Full { .. })
        ));
        assert_eq!(tight.used(), budget.used(), "the refused row used nothing");
    }

    /// A page's byte bound counts each row's JSON and one separator, as
    /// the Postgres statement does (`octet_length(row_to_json(r)) + 1`):
    /// rows that fill the bound exactly fit, one byte less and the last
    /// does not.
    #[test]
    fn a_page_counts_each_row_and_its_separator() {
        let table = Table::<Agent>::new(Arc::new(Budget::new(1 << 20)));
        let rows: Vec<Agent> = ["a", "b", "c"]
            .into_iter()
            .map(|key| table.insert(&agent(1, key), Timestamp::UNIX_EPOCH).expect("room"))
            .collect();
        let two = json_len(&rows[0]) + 1 + json_len(&rows[1]) + 1;
        let page = |bytes| table.page(1, None, None, PageBound { rows: 10, bytes });
        let exact = page(two);
        assert_eq!(exact.items, rows[..2], "two rows fill the bound exactly");
        assert!(exact.more);
        assert_eq!(page(two - 1).items, rows[..1], "one byte short: one row");
    }

    /// `find` is the legacy design's lookup (`mutants/legacy.rs`): a plain
    /// scan by key, any tenant, the first created first.
    #[tokio::test]
    async fn find_answers_the_lowest_id_matching_in_any_tenant() {
        let memory = Arc::new(MemoryStore::new(Terms::default()));
        let stores = memory.stores();
        let now = Timestamp::UNIX_EPOCH;
        let first = stores.agents.insert(&agent(2, "same"), now).await.expect("insert");
        stores.agents.insert(&agent(1, "same"), now).await.expect("insert");
        stores.agents.insert(&agent(1, "other"), now).await.expect("insert");
        let agents = memory.table::<Agent>();
        let found = agents.find(|a| a.idempotency_key() == Some("same"));
        assert_eq!(found.map(|a| a.id), Some(first.id));
        assert!(agents.find(|a| a.idempotency_key() == Some("none")).is_none());

        let deployment = NewDeployment {
            organization_id: 2,
            agent_id: first.id,
            user_id: 1,
            idempotency_key: Some("d".into()),
            spec: DeployEnvelope::from_json(&json!({"channel": "web"}))
                .expect("valid")
                .spec,
        };
        let deployed = stores.deployments.insert(&deployment, now).await.expect("insert");
        let deployments = memory.table::<Deployment>();
        let found = deployments.find(|d| d.idempotency_key() == Some("d"));
        assert_eq!(found.map(|d| d.id), Some(deployed.id));
    }
}
