//! The [`Client`]: its configuration, the server-level calls (health,
//! heartbeat, version) and the dataset catalogue. Records, kNN and analyses
//! are in their own modules.

use std::time::Duration;

use hyper::Method;
use serde_json::{Map, Value};

use mutant_core::api::wire::{
    CreateDatasetRequest, DatasetInfo, DatasetList, HeartbeatResponse, PatchDatasetRequest,
    VersionResponse,
};
use mutant_core::model::NewDataset;

use crate::endpoint::{BaseUrl, dataset_path, datasets_path};
use crate::transport::{Replay, Transport};
use crate::{Error, Result, RetryPolicy};

/// A connection to one Mutant server (any server of a deployment will do:
/// they are stateless). Cheap to clone; clones share one connection pool.
///
/// ```no_run
/// use std::time::Duration;
/// use mutant_client::{Client, RetryPolicy};
///
/// # async fn run() -> mutant_client::Result<()> {
/// let client = Client::new("http://127.0.0.1:7311")?
///     .with_token("the server's MUTANT_API_TOKEN")
///     .with_retry(RetryPolicy::default().with_max_attempts(5))
///     .with_timeout(Duration::from_secs(30));
/// let version = client.version().await?;
/// assert_eq!(version.protocol, mutant_client::PROTOCOL_VERSION);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) transport: Transport,
    pub(crate) poll_interval: Duration,
}

impl Client {
    /// A client of the server at `base_url`, such as `http://127.0.0.1:7311`
    /// (a path prefix is kept, for a server behind a reverse proxy). No
    /// connection is made until the first call.
    ///
    /// Defaults: no token, [`RetryPolicy::default`], a 60 s timeout per
    /// attempt, analyses polled at most every second.
    pub fn new(base_url: &str) -> Result<Client> {
        Ok(Client {
            transport: Transport::new(BaseUrl::parse(base_url)?),
            poll_interval: Duration::from_secs(1),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request, as a server
    /// started with `MUTANT_API_TOKEN` requires.
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.transport.set_token(&token.into());
        self
    }

    /// Sets how requests are retried on 503 answers and connection errors.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Client {
        self.transport.retry = policy;
        self
    }

    /// Sets the time one attempt may take, from sending the request to the
    /// end of the answer (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.transport.timeout = timeout;
        self
    }

    /// Sets the longest wait between two polls of
    /// [`wait_for_analysis`](Client::wait_for_analysis) (default 1 s; polls
    /// start faster and slow down to this).
    pub fn with_poll_interval(mut self, interval: Duration) -> Client {
        self.poll_interval = interval;
        self
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.transport.base_url()
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.transport.retry
    }

    /// Succeeds when the server answers its health check (`GET /healthz`).
    pub async fn health(&self) -> Result<()> {
        self.transport
            .execute(Method::GET, "/healthz", None, None, Replay::Safe)
            .await
            .map(|_| ())
    }

    /// The server's clock, in nanoseconds since the Unix epoch; a cheap
    /// authenticated round trip.
    pub async fn heartbeat(&self) -> Result<u64> {
        let answer: HeartbeatResponse = self.transport.get_json("/v1/heartbeat").await?;
        Ok(answer.nanos)
    }

    /// The server's release, its protocol version (compare it with
    /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)) and its ClickHouse's
    /// version.
    pub async fn version(&self) -> Result<VersionResponse> {
        self.transport.get_json("/v1/version").await
    }

    /// Creates a dataset; fails with [`Error::DatasetExists`] when the name
    /// is taken.
    ///
    /// ```no_run
    /// use mutant_client::{Client, Metric, NewDataset};
    ///
    /// # async fn run(client: Client) -> mutant_client::Result<()> {
    /// let metadata = serde_json::json!({"team": "vision", "split": "train"});
    /// let dataset = client
    ///     .create_dataset(
    ///         &NewDataset::new("train", 384)
    ///             .with_metric(Metric::Cosine)
    ///             .with_metadata(metadata.as_object().cloned().unwrap_or_default()),
    ///     )
    ///     .await?;
    /// println!("created {} ({})", dataset.name, dataset.id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_dataset(&self, dataset: &NewDataset) -> Result<DatasetInfo> {
        let request = CreateDatasetRequest {
            name: dataset.name.clone(),
            dimension: dataset.dimension,
            metric: Some(dataset.metric.as_str().to_owned()),
            metadata: Some(dataset.metadata.clone()),
        };
        // Not safe to replay blindly: a repeat after a lost answer would see
        // its own dataset and fail with `dataset_exists`.
        self.transport
            .send_json(
                Method::POST,
                "/v1/datasets",
                &request,
                Replay::OnlyIfUnprocessed,
            )
            .await
    }

    /// The dataset named `dataset.name`, created if it does not exist; fails
    /// with [`Error::DatasetIncompatible`] if it exists with another
    /// dimension or metric. Its metadata is left as it is.
    pub async fn get_or_create_dataset(&self, dataset: &NewDataset) -> Result<DatasetInfo> {
        let existing = match self.create_dataset(dataset).await {
            Ok(created) => return Ok(created),
            Err(Error::DatasetExists { .. }) => self.get_dataset(&dataset.name).await?,
            Err(error) => return Err(error),
        };
        if existing.dimension != dataset.dimension || existing.metric != dataset.metric {
            return Err(Error::DatasetIncompatible {
                name: dataset.name.clone(),
                existing_dimension: existing.dimension,
                existing_metric: existing.metric.as_str().to_owned(),
                wanted_dimension: dataset.dimension,
                wanted_metric: dataset.metric.as_str().to_owned(),
            });
        }
        Ok(existing)
    }

    /// One dataset by name or UUID, with its live record count.
    pub async fn get_dataset(&self, dataset: &str) -> Result<DatasetInfo> {
        self.transport.get_json(&dataset_path(dataset, "")?).await
    }

    /// Every dataset, ordered by name.
    pub async fn list_datasets(&self) -> Result<Vec<DatasetInfo>> {
        let list: DatasetList = self.transport.get_json(&datasets_path(None)).await?;
        Ok(list.datasets)
    }

    /// The datasets whose metadata contains `pattern`, a JSON object: every
    /// key of the pattern must be present with an equal value, recursively
    /// for nested objects.
    ///
    /// ```no_run
    /// # async fn run(client: mutant_client::Client) -> mutant_client::Result<()> {
    /// let vision = client.find_datasets(&serde_json::json!({"team": "vision"})).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn find_datasets(&self, pattern: &Value) -> Result<Vec<DatasetInfo>> {
        let list: DatasetList = self
            .transport
            .get_json(&datasets_path(Some(pattern)))
            .await?;
        Ok(list.datasets)
    }

    /// Applies `update` (any of a new name, replacement metadata, a metadata
    /// merge patch) and returns the dataset as it now is.
    pub async fn update_dataset(
        &self,
        dataset: &str,
        update: &PatchDatasetRequest,
    ) -> Result<DatasetInfo> {
        self.transport
            .send_json(
                Method::PATCH,
                &dataset_path(dataset, "")?,
                update,
                Replay::Safe,
            )
            .await
    }

    /// Renames a dataset; its UUID stays.
    pub async fn rename_dataset(&self, dataset: &str, new_name: &str) -> Result<DatasetInfo> {
        let update = PatchDatasetRequest {
            name: Some(new_name.to_owned()),
            ..PatchDatasetRequest::default()
        };
        self.update_dataset(dataset, &update).await
    }

    /// Replaces a dataset's metadata with `metadata`.
    pub async fn replace_dataset_metadata(
        &self,
        dataset: &str,
        metadata: Map<String, Value>,
    ) -> Result<DatasetInfo> {
        let update = PatchDatasetRequest {
            metadata: Some(metadata),
            ..PatchDatasetRequest::default()
        };
        self.update_dataset(dataset, &update).await
    }

    /// Patches a dataset's metadata (RFC 7396 merge patch: keys are set,
    /// `null` removes a key, nested objects are patched recursively).
    pub async fn patch_dataset_metadata(
        &self,
        dataset: &str,
        patch: Map<String, Value>,
    ) -> Result<DatasetInfo> {
        let update = PatchDatasetRequest {
            metadata_patch: Some(patch),
            ..PatchDatasetRequest::default()
        };
        self.update_dataset(dataset, &update).await
    }

    /// Deletes a dataset and all its records.
    pub async fn delete_dataset(&self, dataset: &str) -> Result<()> {
        self.transport
            .execute(
                Method::DELETE,
                &dataset_path(dataset, "")?,
                None,
                None,
                Replay::Safe,
            )
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
