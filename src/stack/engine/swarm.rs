//! Swarm's calls on the Docker Engine API for `stack::swarm`, which builds the specs in
//! compose terms: services, tasks, nodes and overlay networks. The spec and task types
//! are the Engine API's own, named here so that `stack::swarm` names no bollard path.

use super::*;

pub use bollard::models::{Service as SwarmService, ServiceSpec, Task};

impl DockerEngine {
    /// The Swarm services carrying these filters (`label=...`).
    pub async fn swarm_services(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> EResult<Vec<SwarmService>> {
        Ok(self
            .docker
            .list_services(Some(bollard::query_parameters::ListServicesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await?)
    }

    /// Whether this engine is an active Swarm manager.
    pub async fn swarm_manager(&self) -> EResult<bool> {
        let info = self.docker.info().await?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm
            .local_node_state
            .map(|s| s.to_string() == "active")
            .unwrap_or(false);
        Ok(active && swarm.control_available == Some(true))
    }

    /// The driver of the network `name`: None when there is no such network (or it
    /// cannot be read), Some(None) when the engine names no driver.
    pub async fn network_driver(&self, name: &str) -> Option<Option<String>> {
        self.docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .ok()
            .map(|n| n.driver)
    }

    /// Creates an attachable overlay network with these labels.
    pub async fn create_overlay_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> EResult<()> {
        let req = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker.create_network(req).await?;
        Ok(())
    }

    pub async fn create_service(&self, spec: ServiceSpec) -> EResult<()> {
        self.docker.create_service(spec, None).await?;
        Ok(())
    }

    pub async fn inspect_service(&self, name: &str) -> EResult<SwarmService> {
        Ok(self
            .docker
            .inspect_service(
                name,
                None::<bollard::query_parameters::InspectServiceOptions>,
            )
            .await?)
    }

    /// Replaces a service's spec at the version it was read at.
    pub async fn update_service(&self, name: &str, spec: ServiceSpec, version: u64) -> EResult<()> {
        let opts = bollard::query_parameters::UpdateServiceOptions {
            version: version as i32,
            ..Default::default()
        };
        self.docker.update_service(name, spec, opts, None).await?;
        Ok(())
    }

    /// Each node's id with its host name (nodes without one left out).
    pub async fn node_hostnames(&self) -> EResult<HashMap<String, String>> {
        Ok(self
            .docker
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await?
            .into_iter()
            .filter_map(|n| {
                let host = n.description.and_then(|d| d.hostname)?;
                Some((n.id?, host))
            })
            .collect())
    }

    /// The tasks of the service with this id.
    pub async fn service_tasks(&self, id: String) -> EResult<Vec<Task>> {
        Ok(self
            .docker
            .list_tasks(Some(bollard::query_parameters::ListTasksOptions {
                filters: Some(HashMap::from([("service".to_string(), vec![id])])),
            }))
            .await?)
    }

    pub async fn delete_service(&self, name: &str) -> EResult<()> {
        self.docker.delete_service(name).await?;
        Ok(())
    }

    /// The names of the networks carrying these filters.
    pub async fn network_names(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> EResult<Vec<String>> {
        Ok(self
            .docker
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }))
            .await?
            .into_iter()
            .filter_map(|n| n.name)
            .collect())
    }

    pub async fn remove_swarm_network(&self, name: &str) -> EResult<()> {
        self.docker.remove_network(name).await?;
        Ok(())
    }
}
