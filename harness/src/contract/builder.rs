//! A contract written in code instead of a file: the same fields, set by
//! dotted path on top of a profile, then loaded and validated exactly as a
//! file is.
//!
//! ```
//! use idemproof_harness::contract::{Contract, Profile};
//! use serde_json::json;
//!
//! let contract = Contract::builder(Profile::Ietf)
//!     .tenants(["acme"])
//!     .users(["alice"])
//!     .create("POST", "/tenants/{tenant}/orders", json!({"item": "{name}", "qty": "{level}"}))
//!     .set("response.id.pointer", "/id")
//!     .set("auth.kind", "headers")
//!     .set("auth.headers.X-User", "{user}")
//!     .build()?;
//! assert_eq!(contract.principals.users.len(), 1);
//! # Ok::<(), anyhow::Error>(())
//! ```

use serde_json::Value;

use super::{Contract, Profile};

/// Builds a [`Contract`] field by field.
#[derive(Debug, Clone)]
pub struct ContractBuilder {
    table: toml::Table,
    errors: Vec<String>,
}

impl ContractBuilder {
    /// Starts from `profile`'s defaults.
    pub fn new(profile: Profile) -> Self {
        let mut table = toml::Table::new();
        table.insert("profile".into(), toml::Value::String(crate::value_name(&profile)));
        Self {
            table,
            errors: Vec::new(),
        }
    }

    /// Sets a field by its dotted path in the target file
    /// (`"response.id.pointer"`), from any JSON-like value.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let value: Value = value.into();
        match toml::Value::try_from(&value) {
            Ok(v) => {
                let mut parts: Vec<&str> = path.split('.').collect();
                let last = parts.pop().unwrap_or_default();
                let mut table = &mut self.table;
                for part in parts {
                    let entry = table
                        .entry(part.to_owned())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    if !entry.is_table() {
                        *entry = toml::Value::Table(toml::Table::new());
                    }
                    match entry {
                        toml::Value::Table(t) => table = t,
                        _ => return self,
                    }
                }
                table.insert(last.to_owned(), v);
            }
            Err(e) => self.errors.push(format!("{path}: {e}")),
        }
        self
    }

    /// `base_url`.
    pub fn base_url(self, url: &str) -> Self {
        self.set("base_url", url)
    }

    /// `principals.tenants`.
    pub fn tenants<V: Into<Value>>(self, tenants: impl IntoIterator<Item = V>) -> Self {
        let list: Vec<Value> = tenants.into_iter().map(Into::into).collect();
        self.set("principals.tenants", list)
    }

    /// `principals.users`.
    pub fn users<V: Into<Value>>(self, users: impl IntoIterator<Item = V>) -> Self {
        let list: Vec<Value> = users.into_iter().map(Into::into).collect();
        self.set("principals.users", list)
    }

    /// `create.method`, `create.path` and `create.body`.
    pub fn create(self, method: &str, path: &str, body: Value) -> Self {
        self.set("create.method", method)
            .set("create.path", path)
            .set("create.body", body)
    }

    /// Loads and validates the contract.
    pub fn build(self) -> anyhow::Result<Contract> {
        if !self.errors.is_empty() {
            anyhow::bail!("contract builder: {}", self.errors.join("; "));
        }
        Contract::from_table(self.table, "contract builder")
    }
}
