//! The `projection` analysis: plot coordinates for a dataset's map, by PCA
//! or by the neighbour-graph layout, chosen by the `method` parameter or, by
//! default, by the dataset's size.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::graphs::NeighbourGraphs;
use super::rows::{ResultRows, ShapedRow, object, share};
use crate::kernels::{
    DatasetView, Execution, LAYOUT_NEIGHBOURS, LayoutOptions, neighbour_layout, projection,
};
use crate::model::LoadedDataset;
use crate::{Error, Result};

/// Above this many records a projection without `method` is a layout.
/// Below it PCA is kept: it is instant, exact and linear (distances along
/// its axes mean something), and a few thousand points rarely pile up the
/// way a large dataset's clusters do under PCA.
pub(super) const LAYOUT_BY_DEFAULT_ABOVE: usize = 5_000;

/// How a projection places the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProjectionMethod {
    /// The first principal components.
    Pca,
    /// The UMAP-style layout of the self-kNN graph.
    Layout,
}

impl ProjectionMethod {
    /// The `method` parameter of a projection; `None` when absent.
    pub(super) fn parse(value: Option<&Value>) -> Result<Option<Self>> {
        match value.map(Value::as_str) {
            None => Ok(None),
            Some(Some("pca")) => Ok(Some(ProjectionMethod::Pca)),
            Some(Some("layout")) => Ok(Some(ProjectionMethod::Layout)),
            Some(_) => Err(Error::InvalidParameter {
                name: "params",
                reason: "the method of a projection must be \"pca\" or \"layout\"".to_owned(),
            }),
        }
    }

    /// The method a projection of `n_records` records uses when none is asked for.
    pub(super) fn default_for(n_records: usize) -> Self {
        if n_records > LAYOUT_BY_DEFAULT_ABOVE {
            ProjectionMethod::Layout
        } else {
            ProjectionMethod::Pca
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ProjectionMethod::Pca => "pca",
            ProjectionMethod::Layout => "layout",
        }
    }
}

/// What a projection needs besides the dataset.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProjectionRequest {
    pub(super) dimensions: usize,
    pub(super) method: Option<ProjectionMethod>,
    pub(super) seed: u64,
}

/// One row per record (`id`, `rank` = row position, `flagged` false: a map
/// gives no verdict, `coordinates`) and a summary naming the method (with
/// PCA's explained variance, or the layout's neighbour count and seed). The
/// layout reads the self-kNN graph through `graphs`, so a run that has one
/// does not build it again.
pub(super) fn run_projection<'a>(
    target: &Arc<LoadedDataset>,
    dataset: &'a DatasetView<'a>,
    graphs: &mut NeighbourGraphs<'a>,
    request: ProjectionRequest,
    execution: &Execution<'_>,
) -> Result<(ResultRows, Value)> {
    let method = request
        .method
        .unwrap_or_else(|| ProjectionMethod::default_for(dataset.n_rows()));
    let (coordinates, summary) = match method {
        ProjectionMethod::Pca => {
            let result = projection(dataset, request.dimensions, execution)?;
            let summary = object([
                ("n_flagged", json!(0)),
                ("share_flagged", share(0, dataset.n_rows())),
                ("method", json!(method.as_str())),
                (
                    "explained_variance_ratio",
                    json!(result.explained_variance_ratio),
                ),
            ]);
            (result.coordinates, summary)
        }
        ProjectionMethod::Layout => {
            dataset.require_rows("the dataset to project")?;
            let k = LAYOUT_NEIGHBOURS
                .min(dataset.n_rows().saturating_sub(1))
                .max(1);
            let graph = graphs.target_self(k, &execution.part(0.0, 0.5))?;
            let options = LayoutOptions {
                n_components: request.dimensions,
                seed: request.seed,
                ..LayoutOptions::default()
            };
            let layout = neighbour_layout(dataset, graph, &options, &execution.part(0.5, 1.0))?;
            let summary = object([
                ("n_flagged", json!(0)),
                ("share_flagged", share(0, dataset.n_rows())),
                ("method", json!(method.as_str())),
                ("n_neighbours", json!(k)),
                ("n_epochs", json!(layout.n_epochs)),
                ("seed", json!(request.seed)),
            ]);
            (layout.coordinates, summary)
        }
    };
    let n_components = request.dimensions;
    let target = Arc::clone(target);
    let rows = ResultRows::lazy(target.ids.len(), move |row| {
        let mut fields = Map::new();
        fields.insert("id".into(), json!(target.ids[row]));
        fields.insert("rank".into(), json!(row + 1));
        fields.insert("flagged".into(), json!(false));
        fields.insert(
            "coordinates".into(),
            json!(&coordinates[row * n_components..(row + 1) * n_components]),
        );
        ShapedRow::about(row, fields)
    });
    Ok((rows, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Metric;
    use crate::model::NewDataset;

    #[test]
    fn the_method_parameter_and_its_default() {
        assert_eq!(ProjectionMethod::parse(None).unwrap(), None);
        assert_eq!(
            ProjectionMethod::parse(Some(&json!("layout"))).unwrap(),
            Some(ProjectionMethod::Layout)
        );
        assert!(ProjectionMethod::parse(Some(&json!("umap"))).is_err());
        assert!(ProjectionMethod::parse(Some(&json!(1))).is_err());
        assert_eq!(ProjectionMethod::default_for(5_000), ProjectionMethod::Pca);
        assert_eq!(
            ProjectionMethod::default_for(5_001),
            ProjectionMethod::Layout
        );
    }

    #[test]
    fn both_methods_give_one_row_per_record() {
        let vectors: Vec<f32> = (0..60).map(|value| (value % 7) as f32).collect();
        let dataset = DatasetView::new(&vectors, 3).unwrap();
        let target = NewDataset::new("projected", 3).into_dataset(uuid::Uuid::nil(), 0);
        let mut loaded = LoadedDataset::empty(target);
        loaded.ids = (0..20).map(|row| format!("r{row}")).collect();
        let loaded = Arc::new(loaded);
        for method in [ProjectionMethod::Pca, ProjectionMethod::Layout] {
            let request = ProjectionRequest {
                dimensions: 2,
                method: Some(method),
                seed: 0,
            };
            let mut graphs = NeighbourGraphs::new(&dataset, None, Metric::L2);
            let (rows, summary) =
                run_projection(&loaded, &dataset, &mut graphs, request, &Execution::new()).unwrap();
            let rows = rows.all();
            assert_eq!(rows.len(), 20);
            assert_eq!(rows[3]["id"], "r3");
            assert_eq!(rows[3]["flagged"], false);
            assert_eq!(rows[3]["coordinates"].as_array().unwrap().len(), 2);
            assert_eq!(summary["method"], method.as_str());
            assert_eq!(summary["n_flagged"], 0);
        }
    }
}
