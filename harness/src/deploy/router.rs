//! A user's own axum [`Router`], served by the harness in its process on
//! a loopback port it picks (the user needs none): the `cargo test` way
//! to check a service. A black box like `url=`: the router's state lives
//! on across scenarios, as a real service's would.

use async_trait::async_trait;
use axum::Router;
use tokio::sync::oneshot;

use super::read_back::read_back;
use super::{Backend, Capabilities};
use crate::client::ApiClient;
use crate::fault::Fault;
use crate::history::final_state::{FinalState, Judged};

/// A router being served.
pub struct Served {
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Served {
    /// Serves `router` on a fresh loopback port.
    pub async fn start(router: Router) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            url,
            shutdown: Some(tx),
        })
    }

    /// Where it listens.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait(?Send)]
impl Backend for Served {
    fn urls(&self) -> Vec<String> {
        vec![self.url.clone()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::black_box()
    }

    async fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Heal => Ok(()),
            other => anyhow::bail!("{other:?} cannot be injected into a router, only through the HTTP proxy"),
        }
    }

    async fn inspect(&self, judged: &Judged, client: &ApiClient) -> anyhow::Result<FinalState> {
        read_back(client, &self.url, judged).await
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
