//! `url=` and `file=`: a service the harness did not start and cannot
//! look inside. Faults reach it only through the HTTP fault proxy in
//! front of it; the final state is read back through its API (or the SQL
//! count its target file gives).

use async_trait::async_trait;

use super::read_back::read_back;
use super::{Backend, Capabilities};
use crate::client::ApiClient;
use crate::fault::Fault;
use crate::history::final_state::{FinalState, Judged};

/// A black box at a URL.
pub struct External {
    url: String,
}

impl External {
    /// The service at `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
        }
    }
}

#[async_trait(?Send)]
impl Backend for External {
    fn urls(&self) -> Vec<String> {
        vec![self.url.clone()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::black_box()
    }

    async fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Heal => Ok(()),
            other => anyhow::bail!("{other:?} cannot be injected into a service the harness did not start"),
        }
    }

    async fn inspect(&self, judged: &Judged, client: &ApiClient) -> anyhow::Result<FinalState> {
        read_back(client, &self.url, judged).await
    }

    async fn stop(&mut self) {}
}
