//! The final state of a black box, read the way its target file says:
//! each acknowledged resource by `GET`, and the resources per key from a
//! paged list (matched to keys by the key each item shows, or else by the
//! form's name) or from a SQL count on the service's own database.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::client::ApiClient;
use crate::contract::template::{self, Vars, text_of};
use crate::contract::{ReadList, ReadSql};
use crate::form::FormField;
use crate::history::ScopeKey;
use crate::history::final_state::{FinalState, Judged};

/// Reads what the contract lets the harness read.
pub async fn read_back(client: &ApiClient, base: &str, judged: &Judged) -> anyhow::Result<FinalState> {
    let c = client.contract();
    let mut state = FinalState::default();
    if let Some(get) = &c.read.get {
        state.comparable = get.same_shape;
        state.sources.push("GET by id".into());
        for (id, &(tenant, user)) in &judged.acknowledged {
            state
                .acknowledged
                .insert(id.clone(), client.get(base, tenant, user, id).await?);
        }
    }
    if let Some(sql) = &c.read.sql {
        state.sources.push("SQL count".into());
        state.duplicates = sql_counts(client, sql, judged).await?;
    } else if let Some(list) = &c.read.list {
        state.sources.push("list".into());
        state.duplicates = list_counts(client, base, list, judged).await?;
    }
    Ok(state)
}

async fn sql_counts(client: &ApiClient, sql: &ReadSql, judged: &Judged) -> anyhow::Result<Vec<(ScopeKey, usize)>> {
    // `{name}` placeholders become `$1, $2…` in order of first use.
    let mut order: Vec<String> = Vec::new();
    for p in template::placeholders(&sql.count).map_err(anyhow::Error::msg)? {
        if !order.contains(&p) {
            order.push(p);
        }
    }
    let mut vars = Vars::new();
    for (i, name) in order.iter().enumerate() {
        vars = vars.set(name.clone(), format!("${}", i + 1));
    }
    let query = template::render_str(&sql.count, &vars, template::verbatim).map_err(anyhow::Error::msg)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&sql.url)
        .await
        .map_err(|e| anyhow::anyhow!("read.sql: cannot connect: {e}"))?;
    let mut out = Vec::new();
    for scope in judged.scopes.keys() {
        // The scope's principal's values (captures included) and its key.
        let values = client.principal_values(scope.0, scope.1).set("key", scope.2.clone());
        let mut q = sqlx::query_scalar::<_, i64>(&query);
        for name in &order {
            q = q.bind(values.get(name).map(text_of).unwrap_or_default());
        }
        let n = q
            .fetch_one(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("read.sql.count: {e}"))?;
        if n > 1 {
            out.push((scope.clone(), n as usize));
        }
    }
    pool.close().await;
    Ok(out)
}

async fn list_counts(
    client: &ApiClient,
    base: &str,
    list: &ReadList,
    judged: &Judged,
) -> anyhow::Result<Vec<(ScopeKey, usize)>> {
    let c = client.contract();
    // Listed as every principal of a judged scope (a list may show only
    // the caller's own resources); items deduplicated by id per tenant.
    let principals: BTreeSet<(usize, usize)> = judged.scopes.keys().map(|(t, u, _)| (*t, *u)).collect();
    let mut items: BTreeMap<usize, BTreeMap<String, Value>> = BTreeMap::new();
    for (t, u) in principals {
        for item in client.list(base, t, u).await? {
            if let Some(id) = item.pointer(&list.id).map(text_of) {
                items.entry(t).or_default().insert(id, item);
            }
        }
    }
    let user_of = |item: &Value| {
        c.response
            .user
            .as_deref()
            .and_then(|p| item.pointer(p))
            .map(text_of)
            .and_then(|label| judged.users.iter().position(|u| *u == label))
    };
    let by_user = c.response.user.is_some();
    let mut out = Vec::new();
    match &list.key {
        Some(key_ptr) => {
            let mut counts: BTreeMap<(usize, Option<usize>, String), usize> = BTreeMap::new();
            for (&t, tenant_items) in &items {
                for item in tenant_items.values() {
                    if let Some(key) = item.pointer(key_ptr).map(text_of) {
                        let user = if by_user { user_of(item) } else { None };
                        *counts.entry((t, user, key)).or_default() += 1;
                    }
                }
            }
            for scope in judged.scopes.keys() {
                let (t, u, k) = scope;
                let (n, allowed) = if by_user {
                    (counts.get(&(*t, Some(*u), k.clone())).copied().unwrap_or(0), 1)
                } else {
                    let sharing = judged.scopes.keys().filter(|(t2, _, k2)| t2 == t && k2 == k).count();
                    (counts.get(&(*t, None, k.clone())).copied().unwrap_or(0), sharing)
                };
                if n > allowed {
                    out.push((scope.clone(), n));
                }
            }
        }
        None => {
            let name_ptr = c.response.fields.get(&FormField::Name).cloned().unwrap_or_default();
            for component in name_components(judged) {
                let t = component[0].0;
                let names: BTreeSet<&String> = component.iter().flat_map(|s| &judged.scopes[s]).collect();
                let n = items.get(&t).map_or(0, |tenant_items| {
                    tenant_items
                        .values()
                        .filter(|item| item.pointer(&name_ptr).map(text_of).is_some_and(|n| names.contains(&n)))
                        .count()
                });
                if n > component.len() {
                    out.extend(component.into_iter().map(|s| (s, n)));
                }
            }
        }
    }
    Ok(out)
}

/// Scopes of one tenant linked by the names sent with them: a group may
/// hold one resource per scope (a refresh sends one name with two keys;
/// an edit sends two names with one key).
fn name_components(judged: &Judged) -> Vec<Vec<ScopeKey>> {
    let scopes: Vec<&ScopeKey> = judged.scopes.keys().collect();
    let mut component: Vec<usize> = (0..scopes.len()).collect();
    fn root(c: &mut [usize], mut i: usize) -> usize {
        while c[i] != i {
            c[i] = c[c[i]];
            i = c[i];
        }
        i
    }
    let mut first_with: BTreeMap<(usize, &String), usize> = BTreeMap::new();
    for (i, scope) in scopes.iter().enumerate() {
        for name in &judged.scopes[*scope] {
            match first_with.get(&(scope.0, name)) {
                Some(&j) => {
                    let (a, b) = (root(&mut component, i), root(&mut component, j));
                    component[a] = b;
                }
                None => {
                    first_with.insert((scope.0, name), i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<ScopeKey>> = BTreeMap::new();
    for (i, scope) in scopes.iter().enumerate() {
        let r = root(&mut component, i);
        groups.entry(r).or_default().push((*scope).clone());
    }
    groups.into_values().collect()
}
